//! Outgoing mail through the administrator's SMTP server: address verification, password reset
//! and security notifications. Without `[smtp] host` nothing is sent and the would-be mail is
//! logged without its links (they carry secrets). Messages go through the durable job queue
//! ([`crate::jobs`]): queued in the database with the operation's answer, sent off the request
//! path by whichever node's worker claims them, retried with backoff; a failure is logged and
//! kept on the job, never shown to the caller.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use palisade_store::Db;
use serde::{Deserialize, Serialize};

use crate::config::{SmtpConfig, SmtpSecurity};

/// The job kind of a message to send.
pub const JOB: &str = "mail";
/// How many times a message is tried before it is kept as failed (with backoff, about a day).
const ATTEMPTS: i64 = 10;

/// A message waiting in the job queue.
#[derive(Serialize, Deserialize)]
pub(crate) struct Queued {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The body carries a one-time secret (a verification or reset link): it is erased if the
    /// message finally fails, rather than kept in the database for a retry.
    #[serde(default)]
    pub secret: bool,
    /// The body was erased (see `secret`): nothing is left to send.
    #[serde(default)]
    pub erased: bool,
}

impl Queued {
    /// What a failed job keeps: the envelope, and the body only if it holds no secret.
    pub(crate) fn kept_after_failure(&self) -> Option<String> {
        if !self.secret {
            return None;
        }
        let kept = Queued { to: self.to.clone(), subject: self.subject.clone(), body: String::new(), secret: true, erased: true };
        serde_json::to_string(&kept).ok()
    }
}

#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Option<Mailbox>,
    db: Db,
    /// Wakes this process's job worker when it queues a message.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// The jobs this process queued, so that a short-lived process (a CLI command) can send them
    /// before it ends.
    queued: Arc<std::sync::Mutex<Vec<i64>>>,
}

impl Mailer {
    pub fn new(config: &SmtpConfig, db: Db) -> anyhow::Result<Self> {
        let mut mailer = Self { transport: None, from: None, db, wake: Default::default(), queued: Default::default() };
        let Some(host) = &config.host else { return Ok(mailer) };
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
        mailer.transport = Some(builder.build());
        mailer.from = Some(from);
        Ok(mailer)
    }

    /// The ids of the jobs this process queued and has not handed over yet, emptied.
    pub(crate) fn take_queued(&self) -> Vec<i64> {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// Queues a plain-text message to `to` in the durable job queue: it is sent by a job worker
    /// (any node's, or this CLI command's before it ends), retried with backoff when the SMTP
    /// server fails, and not lost when a node stops. A message that cannot even be queued (the
    /// database failing) is logged, never shown to the caller: the operation it reports on is done.
    pub async fn send(&self, to: &str, subject: &str, body: String) {
        self.queue(to, subject, body, false).await
    }

    /// As [`Mailer::send`], for a message whose body carries a one-time secret (a link): the
    /// body is erased from the queue if the message finally fails.
    pub async fn send_secret(&self, to: &str, subject: &str, body: String) {
        self.queue(to, subject, body, true).await
    }

    async fn queue(&self, to: &str, subject: &str, body: String, secret: bool) {
        if self.transport.is_none() {
            tracing::info!(mail.subject = subject, "mail not sent: no SMTP server is configured");
            return;
        }
        if let Err(e) = to.parse::<Mailbox>() {
            tracing::warn!(error = %e, "mail not sent: invalid recipient address");
            return;
        }
        let job = Queued { to: to.to_string(), subject: subject.to_string(), body, secret, erased: false };
        let payload = match serde_json::to_string(&job) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "mail not queued");
                return;
            }
        };
        match self.db.enqueue_job(JOB, &payload, ATTEMPTS).await {
            Ok(id) => {
                self.queued.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                self.wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, mail.subject = subject, "mail could not be queued"),
        }
    }

    /// Hands a queued message to the SMTP server.
    pub(crate) async fn deliver(&self, job: &Queued) -> Result<(), String> {
        if job.erased {
            return Err("the message carried a one-time link and was erased when it failed; the user can ask for a new one".into());
        }
        let (Some(transport), Some(from)) = (&self.transport, &self.from) else {
            return Err("no SMTP server is configured on this node".into());
        };
        let to: Mailbox = job.to.parse().map_err(|e| format!("invalid recipient address: {e}"))?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(&job.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(job.body.clone())
            .map_err(|e| format!("could not build the message: {e}"))?;
        transport.send(message).await.map_err(|e| e.to_string())?;
        tracing::info!(mail.subject = %job.subject, "mail sent");
        Ok(())
    }
}

/// A security notification to a user, if they have an address.
pub async fn notify(mailer: &Mailer, user: &palisade_store::User, subject: &str, what: &str) {
    let Some(email) = &user.email else { return };
    let body = format!(
        "Hello {},\n\n{what}\n\nIf this was not you, change your password, review your tokens and second factors, \
         and contact the administrators of this Palisade instance.\n",
        user.name
    );
    mailer.send(email, &format!("[Palisade] {subject}"), body).await;
}
