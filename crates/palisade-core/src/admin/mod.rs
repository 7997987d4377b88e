//! The operations that change accounts, tokens, roles, releases, quarantined files and trusted
//! publishers, shared by the CLI and the HTTP API so that both apply the same rules, write the
//! same security events and send the same mail. Each one checks its rules, changes the store,
//! records the event, tells the people it concerns, and announces the change to the caches.
//!
//! Whether the caller may do it at all is decided before: by `access::authorize` for the API,
//! and for the CLI by having the data directory (the machine's administrator).

pub mod publishers;
pub mod quarantine;
pub mod releases;
pub mod roles;
pub mod sharing;
pub mod tokens;
pub mod users;

pub use publishers::{PublisherTarget, add_publisher, remove_publisher, sweep_expired_publishers};
pub use quarantine::{RescanSummary, confirm, release, rescan};
pub use releases::{remove_file, remove_malicious, set_critical, set_require_attestations, set_status, set_yanked};
pub use roles::{remove_role, set_role};
pub use sharing::{set_trusted_reporter, waive};
pub use tokens::{create_token, create_token_for, parse_duration, revoke_token};
pub use users::{create_user, reset_second_factors, set_disabled, set_password, validate_user_name, verify_email};

use crate::access::{Origin, Principal};

/// Who performs an operation, as the journal and the event log name them.
#[derive(Clone, Debug)]
pub struct Actor {
    /// A user's name, `publisher:<id>`, or `admin-cli (<operator>)`.
    pub name: String,
    /// The acting user, when there is one.
    pub user_id: Option<i64>,
    pub origin: Origin,
}

impl Actor {
    /// The administrator at the command line, named after the operating-system user.
    pub fn cli() -> Self {
        let operator = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
        Self { name: format!("admin-cli ({operator})"), user_id: None, origin: Origin::default() }
    }

    /// An authenticated caller of the API.
    pub fn of(principal: &Principal, origin: &Origin) -> Self {
        Self { name: principal.user_name.clone(), user_id: principal.user_id, origin: origin.clone() }
    }
}
