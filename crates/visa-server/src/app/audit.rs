//! `GET /v1/api/audit`: the account's audit log, newest first, cursor-paginated like keys,
//! narrowed by `action` (e.g. `key.updated`), `target` (e.g. `key:12`) and `since` (RFC 3339).
//! Read-only by construction: no route changes or deletes an entry, and the table's
//! triggers refuse it.

use crate::auth::Session;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::wire::ListPage;
use crate::wire::audit::{AuditEntryView, AuditList, AuditQuery};
use visa_core::pagination::PageRequest;
use visa_core::role::Permission;

pub async fn list(state: &AppState, caller: &Session, page: PageRequest, query: AuditQuery) -> ApiResult<AuditList> {
    caller.require(Permission::Read)?;
    let page = state.store.list_audit(caller.account.id, query.filter()?, page).await?;
    Ok(AuditList { page: ListPage::of(&page), entries: page.items.iter().map(AuditEntryView::from).collect() })
}
