//! The guessing rate limits' shared log (migration 0009): what each node counted, for the others
//! to apply, so that a lockout holds cluster-wide.

use sqlx::Row;

use super::{Db, now_micros};
use crate::StoreError;

/// One counted attempt (or a success that clears a count), as a node reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimiterEvent {
    /// Which limiter: `password`, `second_factor`, `secrets`, `mail`, `tokens`.
    pub limiter: String,
    /// What happened: `reserve`, `fail`, `succeed`.
    pub op: String,
    pub key1: String,
    pub key2: String,
    /// When it was counted, in microseconds since the epoch (0 for events about to be recorded:
    /// the database stamps them).
    pub at: i64,
}

impl Db {
    /// Records what `node` counted.
    pub async fn record_limiter_events(&self, node: &str, events: &[LimiterEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let now = now_micros();
        let mut tx = self.writer.begin().await?;
        for e in events {
            sqlx::query("INSERT INTO limiter_events (node, limiter, op, key1, key2, at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(node)
                .bind(&e.limiter)
                .bind(&e.op)
                .bind(&e.key1)
                .bind(&e.key2)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What nodes other than `node` recorded after event `after` and since `since` (microseconds),
    /// oldest first, with the id to continue from.
    pub async fn limiter_events_after(&self, node: &str, after: i64, since: i64) -> Result<(Vec<LimiterEvent>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT id, node, limiter, op, key1, key2, at FROM limiter_events WHERE id > $1 AND at >= $2 ORDER BY id LIMIT 5000",
        )
        .bind(after)
        .bind(since)
        .fetch_all(&self.reader)
        .await?;
        let mut last = after;
        let mut out = Vec::new();
        for r in rows {
            last = r.get(0);
            let from: String = r.get(1);
            if from != node {
                out.push(LimiterEvent { limiter: r.get(2), op: r.get(3), key1: r.get(4), key2: r.get(5), at: r.get(6) });
            }
        }
        Ok((out, last))
    }

    /// Forgets what was recorded before `before` (microseconds): no lockout lasts that long.
    pub async fn prune_limiter_events(&self, before: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM limiter_events WHERE at < $1").bind(before).execute(&self.writer).await?;
        Ok(())
    }
}
