//! WebAuthn: security keys (a second factor after the password) and passkeys (discoverable,
//! user-verifying credentials that log in alone), through `webauthn-rs`. Its types stay in this
//! module: callers keep credentials and ceremony states as opaque JSON strings, and exchange
//! options and responses with the browser as JSON.
//!
//! The relying party is the instance's public URL: its host is the RP id, and the origin must
//! match exactly (scheme, host and port), so an assertion made for another site (a phishing
//! page, or another port) is refused. Every ceremony's state is kept server-side by the caller
//! and used once; challenges come from `webauthn-rs`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey,
    SecurityKeyAuthentication, SecurityKeyRegistration, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// What went wrong in a ceremony, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum WebauthnError {
    /// The instance cannot be a relying party (no usable public URL).
    #[error("{0}")]
    Config(String),
    /// The browser's answer is not a WebAuthn credential of the expected shape.
    #[error("malformed WebAuthn response: {0}")]
    Malformed(String),
    /// The answer is well formed but does not verify (wrong origin, challenge, signature...).
    #[error("the security key's answer was refused: {0}")]
    Rejected(String),
}

type Result<T> = std::result::Result<T, WebauthnError>;

/// Which kind of credential a registration makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A second factor after the password; user verification preferred, not required.
    SecurityKey,
    /// Discoverable and user-verifying: logs in without a password.
    Passkey,
}

/// A ceremony begun: the options for `navigator.credentials.create/get` (JSON, binary fields
/// base64url) and the state to keep until the browser answers.
pub struct Begun {
    pub options: Value,
    pub state: String,
}

/// A registered credential: its id (base64url) and its stored form.
pub struct Registered {
    pub credential_id: String,
    pub stored: String,
}

/// A verified assertion: which credential, and its stored form when it changed (sign count).
pub struct Verified {
    pub credential_id: String,
    pub updated: Option<String>,
}

/// The instance as a WebAuthn relying party.
pub struct RelyingParty {
    inner: Webauthn,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty").field("origins", &self.inner.get_allowed_origins()).finish()
    }
}

fn rejected(e: impl std::fmt::Display) -> WebauthnError {
    WebauthnError::Rejected(e.to_string())
}

fn malformed(e: impl std::fmt::Display) -> WebauthnError {
    WebauthnError::Malformed(e.to_string())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| WebauthnError::Config(format!("cannot serialise WebAuthn state: {e}")))
}

/// Reads a stored form (`Passkey` and `SecurityKey` share one shape: the credential).
fn stored<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| WebauthnError::Config(format!("a stored WebAuthn credential is unreadable: {e}")))
}

fn state<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| WebauthnError::Config(format!("a WebAuthn ceremony state is unreadable: {e}")))
}

/// Parses the browser's JSON answer.
fn response<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(malformed)
}

/// The base64url (unpadded) form of a credential id, as stored and as browsers send `id`.
pub fn credential_id(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

impl RelyingParty {
    /// The relying party for an instance at `public_url` (`https://host[:port]`, or `http://`
    /// for `localhost`, which browsers treat as secure). `name` is shown by authenticators.
    pub fn new(public_url: &str, name: &str) -> Result<Self> {
        let url = Url::parse(public_url).map_err(|e| WebauthnError::Config(format!("public_url {public_url:?} is not a URL: {e}")))?;
        let host = url.host_str().ok_or_else(|| WebauthnError::Config(format!("public_url {public_url:?} has no host")))?;
        if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            return Err(WebauthnError::Config(format!(
                "security keys and passkeys need public_url to name a host, not an IP address ({public_url:?}); use localhost or a domain"
            )));
        }
        let origin = Url::parse(url.origin().ascii_serialization().as_str()).map_err(|e| WebauthnError::Config(e.to_string()))?;
        let inner = WebauthnBuilder::new(host, &origin)
            .map_err(|e| WebauthnError::Config(format!("public_url {public_url:?} cannot be a WebAuthn relying party: {e}")))?
            .rp_name(name)
            .build()
            .map_err(|e| WebauthnError::Config(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Begins registering a credential for the user with WebAuthn handle `user_handle` (a UUID)
    /// and name `user_name`; `existing` (stored forms) are excluded, so one authenticator is
    /// not registered twice.
    pub fn begin_registration(&self, kind: KeyKind, user_handle: &str, user_name: &str, existing: &[String]) -> Result<Begun> {
        let handle = Uuid::parse_str(user_handle).map_err(|e| WebauthnError::Config(format!("bad user handle: {e}")))?;
        let exclude = existing.iter().map(|s| stored::<SecurityKey>(s).map(|k| k.cred_id().clone())).collect::<Result<Vec<_>>>()?;
        let exclude = (!exclude.is_empty()).then_some(exclude);
        match kind {
            KeyKind::SecurityKey => {
                let (ccr, reg) =
                    self.inner.start_securitykey_registration(handle, user_name, user_name, exclude, None, None).map_err(rejected)?;
                let mut options = serde_json::to_value(ccr).map_err(malformed)?;
                // webauthn-rs asks, without enforcing, for credProtect "user verification
                // required"; Chromium refuses that combination for a non-discoverable key whose
                // user verification is only preferred, so the request goes without it.
                if let Some(ext) = options.pointer_mut("/publicKey/extensions").and_then(Value::as_object_mut) {
                    ext.remove("credentialProtectionPolicy");
                    ext.remove("enforceCredentialProtectionPolicy");
                }
                Ok(Begun { options, state: to_json(&reg)? })
            }
            KeyKind::Passkey => {
                let (ccr, reg) = self.inner.start_passkey_registration(handle, user_name, user_name, exclude).map_err(rejected)?;
                let mut options = serde_json::to_value(ccr).map_err(malformed)?;
                // A passkey must be discoverable to log in without a user name: ask for a
                // resident key (webauthn-rs leaves it optional for compatibility).
                if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut) {
                    sel.insert("residentKey".into(), "required".into());
                    sel.insert("requireResidentKey".into(), true.into());
                }
                Ok(Begun { options, state: to_json(&reg)? })
            }
        }
    }

    /// Verifies the browser's answer to a registration begun with `state`.
    pub fn finish_registration(&self, kind: KeyKind, answer: &Value, state_json: &str) -> Result<Registered> {
        let reg: RegisterPublicKeyCredential = response(answer)?;
        match kind {
            KeyKind::SecurityKey => {
                let st: SecurityKeyRegistration = state(state_json)?;
                let key = self.inner.finish_securitykey_registration(&reg, &st).map_err(rejected)?;
                Ok(Registered { credential_id: credential_id(key.cred_id()), stored: to_json(&key)? })
            }
            KeyKind::Passkey => {
                let st: PasskeyRegistration = state(state_json)?;
                let key = self.inner.finish_passkey_registration(&reg, &st).map_err(rejected)?;
                Ok(Registered { credential_id: credential_id(key.cred_id()), stored: to_json(&key)? })
            }
        }
    }

    /// Begins a second-factor assertion with any of the user's credentials (stored forms).
    pub fn begin_authentication(&self, credentials: &[String]) -> Result<Begun> {
        let keys = credentials.iter().map(|s| stored::<SecurityKey>(s)).collect::<Result<Vec<_>>>()?;
        let (rcr, st) = self.inner.start_securitykey_authentication(&keys).map_err(rejected)?;
        Ok(Begun { options: serde_json::to_value(rcr).map_err(malformed)?, state: to_json(&st)? })
    }

    /// Verifies a second-factor assertion; `credentials` are the user's (id, stored form).
    pub fn finish_authentication(&self, answer: &Value, state_json: &str, credentials: &[(String, String)]) -> Result<Verified> {
        let cred: PublicKeyCredential = response(answer)?;
        let st: SecurityKeyAuthentication = state(state_json)?;
        let result = self.inner.finish_securitykey_authentication(&cred, &st).map_err(rejected)?;
        let id = credential_id(result.cred_id());
        let (_, form) = credentials.iter().find(|(c, _)| *c == id).ok_or_else(|| rejected("the credential is not this account's"))?;
        let mut key: SecurityKey = stored(form)?;
        let updated = match key.update_credential(&result) {
            Some(true) => Some(to_json(&key)?),
            _ => None,
        };
        Ok(Verified { credential_id: id, updated })
    }

    /// Begins a passkey login: no user named, the authenticator offers its discoverable keys.
    pub fn begin_passkey_login(&self) -> Result<Begun> {
        let (rcr, st) = self.inner.start_discoverable_authentication().map_err(rejected)?;
        let mut options = serde_json::to_value(rcr).map_err(malformed)?;
        // Asked for from a button, not from form autofill.
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        Ok(Begun { options, state: to_json(&st)? })
    }

    /// The credential id (base64url) and user handle a passkey login answer names, to find
    /// the stored passkey before verifying.
    pub fn passkey_login_identity(&self, answer: &Value) -> Result<(String, String)> {
        let cred: PublicKeyCredential = response(answer)?;
        let (handle, raw) = self.inner.identify_discoverable_authentication(&cred).map_err(rejected)?;
        Ok((credential_id(raw), handle.to_string()))
    }

    /// Verifies a passkey login against the stored passkey the answer named.
    pub fn finish_passkey_login(&self, answer: &Value, state_json: &str, passkey: &str) -> Result<Verified> {
        let cred: PublicKeyCredential = response(answer)?;
        let st: DiscoverableAuthentication = state(state_json)?;
        let mut key: Passkey = stored(passkey)?;
        let result = self.inner.finish_discoverable_authentication_v2(&cred, st, &key).map_err(rejected)?;
        let updated = match key.update_credential(&result) {
            Some(true) => Some(to_json(&key)?),
            _ => None,
        };
        Ok(Verified { credential_id: credential_id(result.cred_id()), updated })
    }
}

/// A fresh WebAuthn user handle (a random UUID: it says nothing about the account).
pub fn new_user_handle() -> String {
    let mut b = [0u8; 16];
    crate::secret::fill_random(&mut b);
    Uuid::from_bytes(b).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_needs_a_host_name() {
        assert!(RelyingParty::new("http://localhost:8080", "Palisade").is_ok());
        assert!(RelyingParty::new("https://pypi.example.com", "Palisade").is_ok());
        let e = RelyingParty::new("http://127.0.0.1:8080", "Palisade").unwrap_err();
        assert!(e.to_string().contains("not an IP address"), "{e}");
        assert!(RelyingParty::new("not a url", "Palisade").is_err());
    }

    #[test]
    fn registration_options_and_garbage_answers() {
        let rp = RelyingParty::new("http://localhost:8080", "Palisade").unwrap();
        let handle = new_user_handle();
        let begun = rp.begin_registration(KeyKind::Passkey, &handle, "alice", &[]).unwrap();
        let pk = &begun.options["publicKey"];
        assert_eq!(pk["rp"]["id"], "localhost");
        assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
        assert!(pk["challenge"].as_str().is_some_and(|c| c.len() >= 43));
        // Two ceremonies never share a challenge.
        let again = rp.begin_registration(KeyKind::SecurityKey, &handle, "alice", &[]).unwrap();
        assert_ne!(again.options["publicKey"]["challenge"], pk["challenge"]);
        for bad in [serde_json::json!({}), serde_json::json!("x"), serde_json::json!({"id": "AA", "rawId": "!!", "type": "public-key"})] {
            assert!(matches!(rp.finish_registration(KeyKind::Passkey, &bad, &begun.state), Err(WebauthnError::Malformed(_))), "{bad}");
        }
        // A passkey login is asked for from a button (no conditional mediation) and names no
        // credential: the authenticator offers its discoverable ones.
        let login = rp.begin_passkey_login().unwrap();
        assert!(login.options.get("mediation").is_none());
        assert!(login.options["publicKey"]["allowCredentials"].as_array().is_none_or(|a| a.is_empty()));
    }
}
