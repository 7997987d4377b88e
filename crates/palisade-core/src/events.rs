//! The security event log: every security-relevant action with its time, actor, client address
//! and user agent, per user and per project. Recording never fails the request that caused it
//! (the action has already happened); a failure to record is logged as an error.

use palisade_store::NewEvent;
use serde_json::{Value, json};

use crate::Core;
use crate::access::Origin;

pub async fn record(core: &Core, kind: &str, actor: &str, user_id: Option<i64>, project_id: Option<i64>, origin: &Origin, details: Value) {
    let event = NewEvent {
        kind: kind.to_string(),
        user_id,
        project_id,
        actor: actor.to_string(),
        addr: origin.addr.clone(),
        user_agent: origin.user_agent.clone(),
        details: (!details.is_null()).then(|| details.to_string()),
    };
    if let Err(e) = core.db.record_event(&event).await {
        tracing::error!(error = %e, event.kind = kind, "could not record a security event");
    }
}

/// An event as the API and the CLI show it.
pub fn to_json(e: &palisade_store::Event) -> Value {
    json!({
        "id": e.id,
        "at": crate::timestamp(e.at),
        "kind": e.kind,
        "user": e.user_name,
        "project": e.project,
        "actor": e.actor,
        "addr": e.addr,
        "user_agent": e.user_agent,
        "details": e.details.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()).unwrap_or(Value::Null),
    })
}
