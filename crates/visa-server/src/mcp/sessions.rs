//! MCP sessions in the database (`visa_store::McpSessionStore`) behind rmcp's session hook:
//! rmcp keeps what a client sent with `initialize` here when a session opens, and a node that
//! receives a request for a session it does not hold (another node opened it, or it restarted)
//! restores it from here, so the client never has to initialize again.

use crate::state::SharedState;
use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore, SessionStoreError};

pub struct DatabaseSessions {
    pub state: SharedState,
}

#[async_trait::async_trait]
impl SessionStore for DatabaseSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        match self.state.store.load_mcp_session(session_id).await? {
            Some(text) => Ok(Some(serde_json::from_str(&text)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, session: &SessionState) -> Result<(), SessionStoreError> {
        let text = serde_json::to_string(session)?;
        Ok(self.state.store.save_mcp_session(session_id, text, self.state.now()).await?)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        Ok(self.state.store.delete_mcp_session(session_id).await?)
    }
}
