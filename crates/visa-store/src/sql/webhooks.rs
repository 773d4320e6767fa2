//! Webhooks: an account's endpoints, the outbox of events and their deliveries (docs/webhooks.md).
//!
//! An event is written by `emit`, inside the transaction of its cause (a key's creation, a
//! revocation, …): a crash after that commit still delivers it, a rolled-back cause never
//! does. It is written only when an enabled endpoint of the account wants it, with one
//! delivery per such endpoint, so a path that fires no event writes nothing. A node leases due
//! deliveries (`claim_webhook_deliveries`: `FOR UPDATE SKIP LOCKED` where writers run
//! concurrently, so one node attempts a delivery at a time), attempts them, and records each
//! attempt with what follows it (`record_webhook_attempt`); a lease that ends unrecorded (the
//! node died) makes the delivery due again for any node.

use super::db::{Db, Row, corrupt, params};
use super::{Engine, SqlStore, audit, from_db, to_db};
use crate::model::*;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::{Value, json};

const ENDPOINT_COLUMNS: &str = "id, account_id, url, events, description, enabled, disabled_reason, secret_salt, \
    previous_salt, previous_until, failing_since, created_at";

fn endpoint_from_row(row: &Row, first: usize) -> StoreResult<WebhookEndpoint> {
    let events: String = row.get(first + 3)?;
    Ok(WebhookEndpoint {
        id: row.get(first)?,
        account_id: row.get(first + 1)?,
        url: row.get(first + 2)?,
        events: serde_json::from_str(&events).map_err(|_| corrupt("webhook's events"))?,
        description: row.get(first + 4)?,
        enabled: row.get(first + 5)?,
        disabled_reason: row.get(first + 6)?,
        secret_salt: row.get(first + 7)?,
        previous_salt: row.get(first + 8)?,
        previous_until: row.get::<Option<i64>>(first + 9)?.map(from_db),
        failing_since: row.get::<Option<i64>>(first + 10)?.map(from_db),
        created_at: from_db(row.get(first + 11)?),
    })
}

fn load(conn: &dyn Db, account_id: AccountId, id: WebhookId) -> StoreResult<WebhookEndpoint> {
    conn.query_row(
        &format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1 AND account_id = ?2 AND deleted_at IS NULL"
        ),
        params![id, account_id],
        |row| endpoint_from_row(row, 0),
    )?
    .ok_or(StoreError::NotFound)
}

fn events_to_db(events: &[String]) -> String {
    serde_json::to_string(events).expect("strings serialize")
}

/// What is audited of an endpoint (never its secret, which is not stored anyway).
fn snapshot(e: &WebhookEndpoint) -> Value {
    json!({
        "url": e.url,
        "events": e.events,
        "description": e.description,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "secret_rotated_until": crate::audit::time(e.previous_until),
    })
}

fn target(id: WebhookId) -> String {
    format!("webhook:{id}")
}

/// An endpoint whose every attempt has failed for this long is disabled.
pub const WEBHOOK_FAILING_DAYS: i64 = 5;

/// Disables an endpoint for `reason` (`gone`: it answered 410; `failing`: for
/// `WEBHOOK_FAILING_DAYS` in a row), audited as the server's own act. Its pending deliveries
/// wait: an owner who enables it again resumes them.
fn disable(conn: &dyn Db, account_id: AccountId, id: WebhookId, reason: &str, now: Timestamp) -> StoreResult<()> {
    let before = load(conn, account_id, id)?;
    if !before.enabled {
        return Ok(());
    }
    conn.execute(
        "UPDATE webhook_endpoints SET enabled = ?2, disabled_reason = ?3 WHERE id = ?1",
        params![id, false, reason],
    )?;
    let after = load(conn, account_id, id)?;
    let ctx = AuditContext { actor: Actor::System, ip: None, user_agent: None, now };
    audit::record(conn, account_id, &ctx, "webhook.disabled", &target(id), snapshot(&before), snapshot(&after))
}

/// Writes an event of `kind` for the account's enabled endpoints that want it, with `data`, in
/// the caller's transaction; nothing if none wants it.
pub(crate) fn emit(conn: &dyn Db, account_id: AccountId, kind: &str, data: Value, now: Timestamp) -> StoreResult<()> {
    let endpoints = conn.query_map(
        &format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE account_id = ?1 AND enabled AND deleted_at IS NULL"
        ),
        params![account_id],
        |row| endpoint_from_row(row, 0),
    )?;
    let to: Vec<WebhookId> = endpoints.iter().filter(|e| e.wants(kind)).map(|e| e.id).collect();
    enqueue(conn, account_id, kind, data, now, &to).map(drop)
}

/// Writes an event of `kind` and a delivery of it to each of `endpoints`, due now; its id.
fn enqueue(
    conn: &dyn Db,
    account_id: AccountId,
    kind: &str,
    data: Value,
    now: Timestamp,
    endpoints: &[WebhookId],
) -> StoreResult<Option<String>> {
    if endpoints.is_empty() {
        return Ok(None);
    }
    let public_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let payload = json!({ "type": kind, "timestamp": crate::audit::time(Some(now)), "data": data }).to_string();
    let event = conn.insert(
        "INSERT INTO webhook_events (public_id, account_id, type, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         RETURNING id",
        params![public_id, account_id, kind, payload, to_db(now)],
    )?;
    for endpoint in endpoints {
        conn.execute(
            "INSERT INTO webhook_deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, updated_at) \
             VALUES (?1, ?2, 'pending', 0, ?3, ?3)",
            params![event, endpoint, to_db(now)],
        )?;
    }
    Ok(Some(public_id))
}

/// Forgets attempts, and events whose deliveries all ended, from before `before` (the
/// retention of the delivery log, `Retention::webhook_log`).
pub(crate) fn sweep(conn: &dyn Db, before: Timestamp, limit: u32) -> StoreResult<usize> {
    let before = to_db(before);
    let attempts = conn.execute(
        "DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts WHERE created_at <= ?1 LIMIT ?2)",
        params![before, limit],
    )?;
    let old_events = "SELECT e.id FROM webhook_events e WHERE e.created_at <= ?1 AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.state = 'pending') LIMIT ?2";
    conn.execute(
        &format!(
            "DELETE FROM webhook_attempts WHERE delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE event_id IN ({old_events}))"
        ),
        params![before, limit],
    )?;
    conn.execute(&format!("DELETE FROM webhook_deliveries WHERE event_id IN ({old_events})"), params![before, limit])?;
    let events =
        conn.execute(&format!("DELETE FROM webhook_events WHERE id IN ({old_events})"), params![before, limit])?;
    Ok(attempts.max(events))
}

/// Webhook endpoints, their outbox and delivery log. Part of the store (`crate::Store`).
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, new: NewWebhook, audit: AuditContext) -> StoreResult<WebhookEndpoint>;
    async fn list_webhooks(&self, account_id: AccountId) -> StoreResult<Vec<WebhookEndpoint>>;
    async fn get_webhook(&self, account_id: AccountId, id: WebhookId) -> StoreResult<WebhookEndpoint>;
    async fn update_webhook(
        &self,
        account_id: AccountId,
        id: WebhookId,
        patch: WebhookPatch,
        audit: AuditContext,
    ) -> StoreResult<WebhookEndpoint>;
    /// Deletes the endpoint; its pending deliveries fail.
    async fn delete_webhook(&self, account_id: AccountId, id: WebhookId, audit: AuditContext) -> StoreResult<()>;
    /// A new secret (from `salt`); the old one keeps signing beside it until `overlap_until`.
    async fn rotate_webhook_secret(
        &self,
        account_id: AccountId,
        id: WebhookId,
        salt: Vec<u8>,
        overlap_until: Timestamp,
        audit: AuditContext,
    ) -> StoreResult<WebhookEndpoint>;
    /// Sends the endpoint an event of `kind` (`webhook.test`) whatever it subscribes to; its id.
    async fn send_webhook_event(
        &self,
        account_id: AccountId,
        id: WebhookId,
        kind: &str,
        data: Value,
        now: Timestamp,
    ) -> StoreResult<String>;
    /// Leases up to `limit` due deliveries to `node` until `lease_until`.
    async fn claim_webhook_deliveries(
        &self,
        node: NodeId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Logs an attempt of `delivery` and does what follows it.
    async fn record_webhook_attempt(
        &self,
        delivery: &DueDelivery,
        log: AttemptLog,
        next: AttemptNext,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The endpoint's last `limit` attempts, newest first.
    async fn list_webhook_attempts(
        &self,
        account_id: AccountId,
        id: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<WebhookAttempt>>;
    /// Makes deliveries to the endpoint due again now; how many.
    async fn replay_webhook(
        &self,
        account_id: AccountId,
        id: WebhookId,
        what: Replay,
        now: Timestamp,
    ) -> StoreResult<u64>;
}

#[async_trait]
impl<E: Engine> WebhookStore for SqlStore<E> {
    async fn create_webhook(&self, new: NewWebhook, ctx: AuditContext) -> StoreResult<WebhookEndpoint> {
        self.write(move |conn| {
            let id = WebhookId::new(conn.insert(
                "INSERT INTO webhook_endpoints (account_id, url, events, description, enabled, secret_salt, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                params![
                    new.account_id,
                    new.url,
                    events_to_db(&new.events),
                    new.description,
                    true,
                    new.secret_salt,
                    to_db(ctx.now)
                ],
            )?);
            let created = load(conn, new.account_id, id)?;
            audit::record(conn, new.account_id, &ctx, "webhook.created", &target(id), Value::Null, snapshot(&created))?;
            Ok(created)
        })
        .await
    }

    async fn list_webhooks(&self, account_id: AccountId) -> StoreResult<Vec<WebhookEndpoint>> {
        self.read(move |conn| {
            conn.query_map(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE account_id = ?1 AND deleted_at IS NULL \
                     ORDER BY id"
                ),
                params![account_id],
                |row| endpoint_from_row(row, 0),
            )
        })
        .await
    }

    async fn get_webhook(&self, account_id: AccountId, id: WebhookId) -> StoreResult<WebhookEndpoint> {
        self.read(move |conn| load(conn, account_id, id)).await
    }

    async fn update_webhook(
        &self,
        account_id: AccountId,
        id: WebhookId,
        patch: WebhookPatch,
        ctx: AuditContext,
    ) -> StoreResult<WebhookEndpoint> {
        self.write(move |conn| {
            let before = load(conn, account_id, id)?;
            let enabled = patch.enabled.unwrap_or(before.enabled);
            conn.execute(
                "UPDATE webhook_endpoints SET url = ?2, events = ?3, description = ?4, enabled = ?5, \
                 disabled_reason = CASE WHEN ?5 THEN NULL ELSE disabled_reason END, \
                 failing_since = CASE WHEN ?5 AND NOT enabled THEN NULL ELSE failing_since END WHERE id = ?1",
                params![
                    id,
                    patch.url.as_ref().unwrap_or(&before.url),
                    events_to_db(patch.events.as_ref().unwrap_or(&before.events)),
                    patch.description.as_ref().unwrap_or(&before.description),
                    enabled
                ],
            )?;
            let after = load(conn, account_id, id)?;
            audit::record(conn, account_id, &ctx, "webhook.updated", &target(id), snapshot(&before), snapshot(&after))?;
            Ok(after)
        })
        .await
    }

    async fn delete_webhook(&self, account_id: AccountId, id: WebhookId, ctx: AuditContext) -> StoreResult<()> {
        self.write(move |conn| {
            let before = load(conn, account_id, id)?;
            let at = to_db(ctx.now);
            conn.execute("UPDATE webhook_endpoints SET deleted_at = ?2, enabled = ?3 WHERE id = ?1", params![id, at, false])?;
            conn.execute(
                "UPDATE webhook_deliveries SET state = 'failed', updated_at = ?2 WHERE endpoint_id = ?1 AND state = 'pending'",
                params![id, at],
            )?;
            audit::record(conn, account_id, &ctx, "webhook.deleted", &target(id), snapshot(&before), Value::Null)
        })
        .await
    }

    async fn rotate_webhook_secret(
        &self,
        account_id: AccountId,
        id: WebhookId,
        salt: Vec<u8>,
        overlap_until: Timestamp,
        ctx: AuditContext,
    ) -> StoreResult<WebhookEndpoint> {
        self.write(move |conn| {
            let before = load(conn, account_id, id)?;
            conn.execute(
                "UPDATE webhook_endpoints SET previous_salt = secret_salt, previous_until = ?2, secret_salt = ?3 \
                 WHERE id = ?1",
                params![id, to_db(overlap_until), salt],
            )?;
            let after = load(conn, account_id, id)?;
            audit::record(
                conn,
                account_id,
                &ctx,
                "webhook.secret_rotated",
                &target(id),
                snapshot(&before),
                snapshot(&after),
            )?;
            Ok(after)
        })
        .await
    }

    async fn send_webhook_event(
        &self,
        account_id: AccountId,
        id: WebhookId,
        kind: &str,
        data: Value,
        now: Timestamp,
    ) -> StoreResult<String> {
        let kind = kind.to_owned();
        self.write(move |conn| {
            load(conn, account_id, id)?;
            enqueue(conn, account_id, &kind, data.clone(), now, &[id])?
                .ok_or_else(|| StoreError::Internal("an event to one endpoint was not written".into()))
        })
        .await
    }

    async fn claim_webhook_deliveries(
        &self,
        node: NodeId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        // Looked for first without writing (this runs every half second on every node).
        let any_due = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT 1 FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?1 \
                     AND (leased_until IS NULL OR leased_until <= ?1) LIMIT 1",
                    params![to_db(now)],
                    |row| row.get::<i64>(0),
                )
            })
            .await?;
        if any_due.is_none() {
            return Ok(vec![]);
        }
        self.write_locking(move |conn| {
            // Where writers run concurrently, a row another node is leasing right now is skipped.
            let lock = if conn.dialect().single_writer() { "" } else { "FOR UPDATE OF d SKIP LOCKED" };
            let leased = conn.query_map(
                &format!(
                    "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 \
                     AND (d.leased_until IS NULL OR d.leased_until <= ?1) AND w.enabled AND w.deleted_at IS NULL \
                     ORDER BY d.next_attempt_at, d.id LIMIT ?2 {lock}"
                ),
                params![to_db(now), limit],
                |row| row.get::<i64>(0),
            )?;
            let mut due = Vec::with_capacity(leased.len());
            for delivery in leased {
                conn.execute(
                    "UPDATE webhook_deliveries SET leased_by = ?2, leased_until = ?3 WHERE id = ?1",
                    params![delivery, node.0, to_db(lease_until)],
                )?;
                let found = conn.query_row(
                    &format!(
                        "SELECT d.id, d.attempts, e.public_id, e.type, e.payload, {} FROM webhook_deliveries d \
                         JOIN webhook_events e ON e.id = d.event_id JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                         WHERE d.id = ?1",
                        ENDPOINT_COLUMNS.split(", ").map(|c| format!("w.{c}")).collect::<Vec<_>>().join(", ")
                    ),
                    params![delivery],
                    |row| {
                        Ok(DueDelivery {
                            delivery_id: row.get(0)?,
                            attempts: row.get(1)?,
                            event_id: row.get(2)?,
                            event_type: row.get(3)?,
                            payload: row.get(4)?,
                            endpoint: endpoint_from_row(row, 5)?,
                        })
                    },
                )?;
                due.extend(found);
            }
            Ok(due)
        })
        .await
    }

    async fn record_webhook_attempt(
        &self,
        delivery: &DueDelivery,
        log: AttemptLog,
        next: AttemptNext,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (id, endpoint, attempt) = (delivery.delivery_id, delivery.endpoint.id, delivery.attempts + 1);
        let account_id = delivery.endpoint.account_id;
        self.write(move |conn| {
            let at = to_db(now);
            conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, endpoint_id, attempt, status, error, latency_ms, response, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, endpoint, attempt, log.status, log.error, log.latency_ms, log.response, at],
            )?;
            let (state, due) = match next {
                AttemptNext::Delivered => ("delivered", at),
                AttemptNext::RetryAt(when) => ("pending", to_db(when)),
                AttemptNext::GiveUp | AttemptNext::Gone => ("failed", at),
            };
            conn.execute(
                "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, next_attempt_at = ?4, leased_by = NULL, \
                 leased_until = NULL, updated_at = ?5 WHERE id = ?1 AND state = 'pending'",
                params![id, state, attempt, due, at],
            )?;
            match next {
                AttemptNext::Delivered => {
                    conn.execute("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?1", params![endpoint])?;
                }
                AttemptNext::Gone => disable(conn, account_id, endpoint, "gone", now)?,
                AttemptNext::RetryAt(_) | AttemptNext::GiveUp => {
                    let failing_since = conn.query_row(
                        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?2) WHERE id = ?1 \
                         RETURNING failing_since",
                        params![endpoint, at],
                        |row| row.get::<i64>(0),
                    )?;
                    if failing_since
                        .is_some_and(|since| now - from_db(since) >= time::Duration::days(WEBHOOK_FAILING_DAYS))
                    {
                        disable(conn, account_id, endpoint, "failing", now)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn list_webhook_attempts(
        &self,
        account_id: AccountId,
        id: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<WebhookAttempt>> {
        self.read(move |conn| {
            load(conn, account_id, id)?;
            conn.query_map(
                "SELECT a.id, e.public_id, e.type, a.attempt, a.status, a.error, a.latency_ms, a.response, a.created_at \
                 FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
                 JOIN webhook_events e ON e.id = d.event_id WHERE a.endpoint_id = ?1 ORDER BY a.id DESC LIMIT ?2",
                params![id, limit],
                |row| {
                    Ok(WebhookAttempt {
                        id: row.get(0)?,
                        event_id: row.get(1)?,
                        event_type: row.get(2)?,
                        attempt: row.get(3)?,
                        log: AttemptLog {
                            status: row.get(4)?,
                            error: row.get(5)?,
                            latency_ms: row.get(6)?,
                            response: row.get(7)?,
                        },
                        created_at: from_db(row.get(8)?),
                    })
                },
            )
        })
        .await
    }

    async fn replay_webhook(
        &self,
        account_id: AccountId,
        id: WebhookId,
        what: Replay,
        now: Timestamp,
    ) -> StoreResult<u64> {
        self.write(move |conn| {
            load(conn, account_id, id)?;
            let at = to_db(now);
            let again = "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?2, leased_by = NULL, \
                 leased_until = NULL, updated_at = ?2 WHERE endpoint_id = ?1";
            let count = match &what {
                Replay::Event(public_id) => {
                    let event = conn
                        .query_row(
                            "SELECT id FROM webhook_events WHERE public_id = ?1 AND account_id = ?2",
                            params![public_id, account_id],
                            |row| row.get::<i64>(0),
                        )?
                        .ok_or(StoreError::NotFound)?;
                    let moved = conn.execute(&format!("{again} AND event_id = ?3"), params![id, at, event])?;
                    if moved == 0 {
                        conn.execute(
                            "INSERT INTO webhook_deliveries (event_id, endpoint_id, state, attempts, next_attempt_at, \
                             updated_at) VALUES (?1, ?2, 'pending', 0, ?3, ?3)",
                            params![event, id, at],
                        )?;
                    }
                    1
                }
                Replay::FailedSince(since) => conn.execute(
                    &format!(
                        "{again} AND state = 'failed' AND event_id IN \
                         (SELECT id FROM webhook_events WHERE account_id = ?3 AND created_at >= ?4)"
                    ),
                    params![id, at, account_id, to_db(*since)],
                )?,
            };
            Ok(count as u64)
        })
        .await
    }
}
