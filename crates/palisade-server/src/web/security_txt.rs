//! `/.well-known/security.txt` (RFC 9116): where to report a vulnerability in this instance,
//! from `[security_txt]`. Without that section there is no such file (404).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub async fn serve(State(state): State<AppState>) -> Response {
    let Some(s) = &state.config.security_txt else {
        return (StatusCode::NOT_FOUND, "this instance publishes no security.txt").into_response();
    };
    let canonical = state.config.public_url.as_deref().map(|u| format!("{}/.well-known/security.txt", u.trim_end_matches('/')));
    let mut response = text(s, canonical.as_deref()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if s.expires_at().is_some_and(|t| t < jiff::Timestamp::now()) {
        tracing::warn!(expires = %s.expires, "security_txt.expires has passed: update it in the configuration");
    }
    response
}

/// The file's text: one field a line, `Contact` in the order configured.
fn text(s: &palisade_core::config::SecurityTxt, canonical: Option<&str>) -> String {
    let mut out = String::new();
    for c in &s.contact {
        out.push_str(&format!("Contact: {c}\n"));
    }
    let expires = s.expires_at().map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_else(|| s.expires.clone());
    out.push_str(&format!("Expires: {expires}\n"));
    for (field, value) in [
        ("Policy", s.policy.as_deref()),
        ("Acknowledgments", s.acknowledgments.as_deref()),
        ("Preferred-Languages", s.preferred_languages.as_deref()),
        ("Canonical", canonical),
    ] {
        if let Some(v) = value {
            out.push_str(&format!("{field}: {v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_rfc_9116_form() {
        let s = palisade_core::config::SecurityTxt {
            contact: vec!["mailto:security@example.org".into(), "https://example.org/report".into()],
            expires: "2027-06-30T12:00:00+02:00".into(),
            policy: Some("https://example.org/policy".into()),
            preferred_languages: Some("en, de".into()),
            acknowledgments: None,
        };
        let t = text(&s, Some("https://pkgs.example.org/.well-known/security.txt"));
        assert_eq!(
            t,
            "Contact: mailto:security@example.org\nContact: https://example.org/report\nExpires: 2027-06-30T10:00:00Z\n\
             Policy: https://example.org/policy\nPreferred-Languages: en, de\nCanonical: https://pkgs.example.org/.well-known/security.txt\n"
        );
    }
}
