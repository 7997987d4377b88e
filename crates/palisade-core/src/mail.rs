//! Outgoing mail through the administrator's SMTP server: address verification, password reset
//! and security notifications. Without `[smtp] host` nothing is sent and the would-be mail is
//! logged without its links (they carry secrets). Sending happens off the request path; a
//! failure is logged, never shown to the caller.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpSecurity};

#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Option<Mailbox>,
    /// The sends in flight, so that a short-lived process (a CLI command) can wait for them.
    sending: tokio_util::task::TaskTracker,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let Some(host) = &config.host else { return Ok(Self { transport: None, from: None, sending: Default::default() }) };
        let mut builder = match config.security {
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        builder = builder.port(config.port).timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(pass)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        let from: Mailbox = config.from.parse().map_err(|e| anyhow::anyhow!("smtp.from {:?}: {e}", config.from))?;
        Ok(Self { transport: Some(builder.build()), from: Some(from), sending: Default::default() })
    }

    /// Waits, at most `limit`, for the mail queued so far to be handed to the SMTP server. A
    /// server sends in the background and never needs this; a CLI command calls it before the
    /// process ends, which would otherwise drop the mail its operation queued.
    pub async fn flush(&self, limit: Duration) {
        self.sending.close();
        if tokio::time::timeout(limit, self.sending.wait()).await.is_err() {
            tracing::warn!(count = self.sending.len(), "mail still being sent when the command ended; it was not sent");
        }
        self.sending.reopen();
    }

    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// Queues a plain-text message to `to`.
    pub fn send(&self, to: &str, subject: &str, body: String) {
        let (Some(transport), Some(from)) = (self.transport.clone(), self.from.clone()) else {
            tracing::info!(mail.subject = subject, "mail not sent: no SMTP server is configured");
            return;
        };
        let to_box: Mailbox = match to.parse() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "mail not sent: invalid recipient address");
                return;
            }
        };
        let message = match Message::builder().from(from).to(to_box).subject(subject).header(ContentType::TEXT_PLAIN).body(body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "mail not sent: could not build the message");
                return;
            }
        };
        let subject = subject.to_string();
        self.sending.spawn(async move {
            match transport.send(message).await {
                Ok(_) => tracing::info!(mail.subject = %subject, "mail sent"),
                Err(e) => tracing::error!(error = %e, mail.subject = %subject, "mail could not be sent"),
            }
        });
    }
}

/// A security notification to a user, if they have an address.
pub fn notify(mailer: &Mailer, user: &palisade_store::User, subject: &str, what: &str) {
    let Some(email) = &user.email else { return };
    let body = format!(
        "Hello {},\n\n{what}\n\nIf this was not you, change your password, review your tokens and second factors, \
         and contact the administrators of this Palisade instance.\n",
        user.name
    );
    mailer.send(email, &format!("[Palisade] {subject}"), body);
}
