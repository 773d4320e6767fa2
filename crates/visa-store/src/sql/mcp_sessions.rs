//! MCP sessions, kept in the database so that a session opened on one node continues on any
//! other, and survives a restart: what the client sent with `initialize`, by session id, as
//! the MCP surface hands it over (opaque JSON here). Swept after `MCP_SESSION_DAYS`.

use super::db::{Db, params};
use super::{Engine, SqlStore, to_db};
use crate::StoreResult;
use crate::model::Timestamp;
use async_trait::async_trait;

/// How long an MCP session is kept after it was opened.
pub const MCP_SESSION_DAYS: i64 = 7;

pub(crate) fn sweep(conn: &dyn Db, now: Timestamp, limit: u32) -> StoreResult<usize> {
    let before = now - time::Duration::days(MCP_SESSION_DAYS);
    conn.execute(
        "DELETE FROM mcp_sessions WHERE id IN (SELECT id FROM mcp_sessions WHERE created_at <= ?1 LIMIT ?2)",
        params![to_db(before), limit],
    )
}

/// MCP sessions. Part of the store (`crate::Store`).
#[async_trait]
pub trait McpSessionStore: Send + Sync {
    /// The state of the session `id`, if it is known.
    async fn load_mcp_session(&self, id: &str) -> StoreResult<Option<String>>;
    /// Keeps (or replaces) the state of the session `id`.
    async fn save_mcp_session(&self, id: &str, state: String, now: Timestamp) -> StoreResult<()>;
    /// Forgets the session `id` (the client ended it).
    async fn delete_mcp_session(&self, id: &str) -> StoreResult<()>;
}

#[async_trait]
impl<E: Engine> McpSessionStore for SqlStore<E> {
    async fn load_mcp_session(&self, id: &str) -> StoreResult<Option<String>> {
        let id = id.to_owned();
        self.read(move |conn| conn.query_row("SELECT state FROM mcp_sessions WHERE id = ?1", params![id], |r| r.get(0)))
            .await
    }

    async fn save_mcp_session(&self, id: &str, state: String, now: Timestamp) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO mcp_sessions (id, state, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                params![id, state, to_db(now)],
            )
            .map(drop)
        })
        .await
    }

    async fn delete_mcp_session(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |conn| conn.execute("DELETE FROM mcp_sessions WHERE id = ?1", params![id]).map(drop)).await
    }
}
