//! Signed webhooks (`[[sharing.webhooks]]`): a JSON body per event (quarantine, confirm,
//! release, report, feed_block), sent by the durable job queue with retries, and signed as
//! `Palisade-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`, so a
//! SIEM or a chat bridge can check that Palisade sent it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Core;

/// The job kind of a webhook delivery.
pub const JOB: &str = "webhook";
/// Attempts before a delivery fails for good (15 s doubling: about 4 hours in all).
const ATTEMPTS: i64 = 11;

/// A queued delivery: the webhook by a digest of its URL (a chat webhook's URL is itself a
/// credential, and the job queue is listed by `palisade jobs list`; the secret stays in the
/// configuration too) and the body.
#[derive(Debug, Deserialize, Serialize)]
pub struct Delivery {
    pub hook: String,
    pub body: String,
}

/// How a delivery names its webhook.
fn hook_id(url: &str) -> String {
    palisade_dist::sha256_hex(url.as_bytes())[..16].to_string()
}

/// A webhook's URL as logs show it: the origin only.
fn redacted(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "(a webhook)".into())
}

/// The signature header's value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(palisade_auth::hmac_sha256(secret.as_bytes(), body)))
}

impl Core {
    /// Queues `event` for every webhook.
    pub async fn announce(&self, event: &str, details: Value) {
        if self.config.sharing.webhooks.is_empty() {
            return;
        }
        let body =
            json!({ "event": event, "at": super::now_rfc3339(), "instance": self.config.public_url, "details": details }).to_string();
        for w in &self.config.sharing.webhooks {
            let payload = serde_json::to_string(&Delivery { hook: hook_id(&w.url), body: body.clone() }).unwrap_or_default();
            match self.db.enqueue_job(JOB, &payload, ATTEMPTS).await {
                Ok(_) => self.mailer.wake.notify_one(),
                Err(e) => tracing::warn!(error = %e, "could not queue a webhook"),
            }
        }
    }

    /// The job: posts one delivery; a non-2xx answer fails it (retried with backoff).
    pub(crate) async fn deliver_webhook(&self, payload: &str) -> Result<(), String> {
        let d: Delivery = serde_json::from_str(payload).map_err(|e| format!("unreadable webhook job: {e}"))?;
        let Some(w) = self.config.sharing.webhooks.iter().find(|w| hook_id(&w.url) == d.hook) else {
            // The webhook was removed from the configuration: nothing to send.
            return Ok(());
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION"), " (webhook)"))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let shown = redacted(&w.url);
        let resp = client
            .post(&w.url)
            .header("content-type", "application/json")
            .header("palisade-signature", signature(w.secret.expose(), d.body.as_bytes()))
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| format!("webhook at {shown}: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("webhook at {shown} answered {}", resp.status()));
        }
        Ok(())
    }
}
