//! The `Store` trait over any SQL `Engine`: each method is one read or one write transaction,
//! handed to the module of its resource (accounts, keys, admin keys, members, sessions,
//! audit, usage, money), which holds the SQL.

use super::money::batch::Step;
use super::{
    Db, Engine, Isolation, accounts, admin_keys, audit, auth_version, keys, members, money, operator_requests,
    provider_requests, sessions, usage,
};
use crate::model::*;
use crate::{Durability, Hold, Store, StoreResult};
use async_trait::async_trait;
use std::sync::Arc;
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::pagination::{Page, PageRequest};
use visa_core::policy::KeyLabel;
use visa_core::role::Role;
use visa_core::secret::SecretHash;

/// The store of every SQL backend: the shared SQL over the backend's `Engine`.
pub struct SqlStore<E> {
    engine: E,
}

impl<E: Engine> SqlStore<E> {
    pub fn new(engine: E) -> Self {
        Self { engine }
    }

    /// A control-plane change (read, decide, write).
    async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.engine.write(Isolation::Serializable, work).await
    }

    /// A change to keys or to what authentication reads: they queue, cluster-wide, for their turn.
    async fn write_credentials<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.engine.write(Isolation::CredentialChange, work).await
    }

    /// A money-path change: it locks what it reads (see `money`).
    async fn write_locking<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.engine.write(Isolation::Locking, work).await
    }

    async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        self.engine.read(work).await
    }
}

#[async_trait]
impl<E: Engine> Store for SqlStore<E> {
    async fn create_account(&self, new: NewAccount, ctx: AuditContext) -> StoreResult<(Account, Member)> {
        self.write(move |conn| accounts::create(conn, &new, &ctx)).await
    }

    async fn account_by_login(&self, login: &str) -> StoreResult<Option<Account>> {
        let login = login.to_owned();
        self.read(move |conn| accounts::account_where(conn, "login = ?1", login)).await
    }

    async fn set_account_approved(&self, login: &str, approved: bool, ctx: AuditContext) -> StoreResult<Account> {
        let login = login.to_owned();
        self.write_credentials(move |conn| accounts::set_approved(conn, &login, approved, &ctx)).await
    }

    async fn credit_account(
        &self,
        login: &str,
        amount: Micros,
        ctx: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<Account> {
        let login = login.to_owned();
        self.write_locking(move |conn| accounts::credit_account(conn, &login, amount, &ctx, request.as_ref())).await
    }

    async fn end_session(&self, token_hash: SecretHash, ctx: AuditContext) -> StoreResult<()> {
        self.write(move |conn| sessions::end_by_token(conn, &token_hash, &ctx)).await
    }

    async fn create_session(&self, new: NewSession, ctx: AuditContext) -> StoreResult<()> {
        self.write(move |conn| sessions::create(conn, &new, &ctx)).await
    }

    async fn list_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        current: Option<SecretHash>,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |conn| sessions::list(conn, account_id, member_id, current.as_ref(), now)).await
    }

    async fn end_sessions(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        which: SessionsToEnd,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<u64> {
        self.write(move |conn| sessions::end(conn, account_id, member_id, &which, caller, &ctx)).await
    }

    async fn change_password(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        password_hash: String,
        keep: SecretHash,
        ctx: AuditContext,
    ) -> StoreResult<(Member, u64)> {
        self.write(move |conn| members::change_password(conn, account_id, member_id, &password_hash, &keep, &ctx)).await
    }

    async fn session_principal(
        &self,
        token_hash: SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<(Account, Member)>> {
        self.read(move |conn| {
            let Some(member) = members::session_member(conn, &token_hash, now)? else {
                return Ok(None);
            };
            Ok(accounts::account_where(conn, "id = ?1", member.account_id)?.map(|account| (account, member)))
        })
        .await
    }

    async fn member_by_login(&self, login: &str) -> StoreResult<Option<Member>> {
        let login = login.to_owned();
        self.read(move |conn| members::active_member(conn, &login)).await
    }

    async fn member_by_invite(&self, invite_hash: SecretHash) -> StoreResult<Option<Member>> {
        self.read(move |conn| members::member_where(conn, "invite_hash = ?1", invite_hash.0)).await
    }

    async fn list_members(&self, account_id: AccountId) -> StoreResult<Vec<Member>> {
        self.read(move |conn| members::list(conn, account_id)).await
    }

    async fn invite_member(&self, account_id: AccountId, new: NewMember, ctx: AuditContext) -> StoreResult<Member> {
        self.write(move |conn| members::invite(conn, account_id, &new, &ctx)).await
    }

    async fn accept_invite(
        &self,
        invite_hash: SecretHash,
        password_hash: String,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| members::accept_invite(conn, &invite_hash, &password_hash, &ctx)).await
    }

    async fn change_member_role(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        role: Role,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| members::change_role(conn, account_id, member_id, role, caller, &ctx)).await
    }

    async fn remove_member(
        &self,
        account_id: AccountId,
        member_id: MemberId,
        caller: Role,
        ctx: AuditContext,
    ) -> StoreResult<Member> {
        self.write(move |conn| members::remove(conn, account_id, member_id, caller, &ctx)).await
    }

    async fn list_audit(
        &self,
        account_id: AccountId,
        filter: AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        self.read(move |conn| audit::list(conn, account_id, &filter, page)).await
    }

    async fn create_key(&self, new: NewKey, ctx: AuditContext) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| keys::create(conn, &new, &ctx)).await
    }

    async fn get_key(&self, account_id: AccountId, key_id: KeyId) -> StoreResult<Option<KeyRecord>> {
        self.read(move |conn| keys::load_key(conn, account_id, key_id)).await
    }

    async fn list_keys(&self, account_id: AccountId, page: PageRequest) -> StoreResult<Page<KeyRecord>> {
        self.read(move |conn| keys::list(conn, account_id, page)).await
    }

    async fn update_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        patch: KeyPatch,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| keys::update(conn, account_id, key_id, &patch, &ctx)).await
    }

    async fn revoke_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        cause: RevokeCause,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| keys::revoke(conn, account_id, key_id, cause, &ctx)).await
    }

    async fn revoke_secret(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        secret_id: SecretId,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| keys::revoke_secret(conn, account_id, key_id, secret_id, &ctx)).await
    }

    async fn rotate_key(
        &self,
        account_id: AccountId,
        key_id: KeyId,
        rotation: Rotation,
        ctx: AuditContext,
    ) -> StoreResult<KeyRecord> {
        self.write_credentials(move |conn| keys::rotate(conn, account_id, key_id, &rotation, &ctx)).await
    }

    async fn key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<AuthRecord>> {
        self.read(move |conn| keys::by_secret(conn, &hash)).await
    }

    async fn auth_version(&self) -> StoreResult<i64> {
        self.read(auth_version::current).await
    }

    fn auth_change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.engine.auth_change_signal()
    }

    async fn record_key_use(&self, uses: Vec<KeyUse>) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.write_locking(move |conn| keys::record_use(conn, &uses)).await
    }

    async fn create_admin_key(
        &self,
        account_id: AccountId,
        label: KeyLabel,
        environment: Environment,
        secret: NewSecret,
        ctx: AuditContext,
    ) -> StoreResult<AdminKeyRecord> {
        self.write(move |conn| admin_keys::create(conn, account_id, &label, environment, &secret, &ctx)).await
    }

    async fn list_admin_keys(&self, account_id: AccountId) -> StoreResult<Vec<AdminKeyRecord>> {
        self.read(move |conn| admin_keys::list(conn, account_id)).await
    }

    async fn revoke_admin_key(
        &self,
        account_id: AccountId,
        id: AdminKeyId,
        ctx: AuditContext,
    ) -> StoreResult<AdminKeyRecord> {
        self.write(move |conn| admin_keys::revoke(conn, account_id, id, &ctx)).await
    }

    async fn admin_key_by_secret(&self, hash: SecretHash) -> StoreResult<Option<(AdminKeyRecord, SecretHash)>> {
        self.read(move |conn| admin_keys::admin_key_where(conn, "hash = ?1", hash.0)).await
    }

    async fn record_usage(&self, counts: Vec<UsageCount>) -> StoreResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.write_locking(move |conn| usage::record(conn, &counts)).await
    }

    async fn key_usage(&self, key_id: KeyId, since_minute: i64, until_minute: i64) -> StoreResult<Vec<UsageCount>> {
        self.read(move |conn| usage::of_key(conn, key_id, since_minute, until_minute)).await
    }

    async fn account_spend(&self, account_id: AccountId, since_day: i64) -> StoreResult<Vec<DaySpend>> {
        self.read(move |conn| usage::account_spend(conn, account_id, since_day)).await
    }

    async fn account_by_id(&self, account_id: AccountId) -> StoreResult<Option<Account>> {
        self.read(move |conn| accounts::account_where(conn, "id = ?1", account_id)).await
    }

    async fn begin_execution(&self, start: ExecutionStart) -> StoreResult<BeginOutcome> {
        let (done, durable) = self.engine.write_money(Step::Begin(start)).await?;
        let outcome = done.begun()?;
        if matches!(outcome, BeginOutcome::Started(_)) {
            return Ok(outcome.map_started(|execution| Hold::new(execution, durable)));
        }
        durable.wait().await?;
        Ok(outcome.map_started(|execution| Hold::new(execution, Durability::done())))
    }

    async fn finish_execution(&self, hold: &Hold, finish: Finish, now: Timestamp) -> StoreResult<ExecutionRecord> {
        let step = Step::Finish { execution: hold.execution.clone(), finish, now };
        let finished = match self.engine.write_money(step).await {
            Ok((done, durable)) => durable.wait().await.and_then(|()| done.finished()),
            Err(e) => Err(e),
        };
        // Resolved long before (the hold's fsync ran first); a failed one taints what followed.
        let held = hold.durable().await;
        held.and(finished)
    }

    async fn abandon_execution(&self, public_id: &str, now: Timestamp) -> StoreResult<bool> {
        let public_id = public_id.to_owned();
        self.write_locking(move |conn| money::abandon(conn, &public_id, now)).await
    }

    async fn running_on_node(&self, node: NodeId, before: Timestamp, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |conn| money::nodes::running_on_node(conn, node, before, limit)).await
    }

    async fn get_execution(&self, filter: ExecutionFilter, public_id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let public_id = public_id.to_owned();
        self.read(move |conn| money::read::get(conn, &filter, &public_id)).await
    }

    async fn list_executions(&self, filter: ExecutionFilter, page: PageRequest) -> StoreResult<Page<ExecutionRecord>> {
        self.read(move |conn| money::read::list(conn, &filter, page)).await
    }

    async fn register_node(&self, name: &str, now: Timestamp, lease: time::Duration) -> StoreResult<NodeId> {
        let name = name.to_owned();
        self.engine.write_lease(move |conn| money::nodes::register_node(conn, &name, now, lease)).await
    }

    async fn renew_node(&self, node: NodeId, lease: time::Duration) -> StoreResult<bool> {
        self.engine.write_lease(move |conn| money::nodes::renew_node(conn, node, lease)).await
    }

    async fn release_node(&self, node: NodeId) -> StoreResult<()> {
        self.engine.write_lease(move |conn| money::nodes::release_node(conn, node)).await
    }

    async fn reclaim_expired_nodes(&self) -> StoreResult<u64> {
        self.engine.write_lease(money::nodes::reclaim_expired_nodes).await
    }

    async fn database_clock(&self) -> StoreResult<Timestamp> {
        self.engine.write_lease(money::nodes::database_clock).await
    }

    async fn require_reconcile(&self, public_id: &str) -> StoreResult<bool> {
        let public_id = public_id.to_owned();
        self.write_locking(move |conn| money::require_reconcile(conn, &public_id)).await
    }

    async fn reconcile_execution(
        &self,
        public_id: &str,
        decision: Reconcile,
        ctx: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<ExecutionRecord> {
        let public_id = public_id.to_owned();
        self.write(move |conn| {
            if operator_requests::replay(conn, request.as_ref())?.is_some() {
                return money::execution_by_public_id(conn, &public_id);
            }
            let done = money::reconcile(conn, &public_id, &decision, &ctx)?;
            operator_requests::remember(conn, request.as_ref(), &public_id, None, ctx.now)?;
            Ok(done)
        })
        .await
    }

    async fn start_provider_request(&self, execution_id: i64) -> StoreResult<()> {
        self.write_locking(move |conn| provider_requests::start(conn, execution_id)).await
    }

    async fn remember_provider_request(&self, execution_id: i64, provider_ref: &str) -> StoreResult<()> {
        let provider_ref = provider_ref.to_owned();
        self.write_locking(move |conn| provider_requests::remember(conn, execution_id, &provider_ref)).await
    }

    async fn provider_request_to_resume(&self, execution_id: i64) -> StoreResult<Option<ProviderRequest>> {
        self.read(move |conn| provider_requests::to_resume(conn, execution_id)).await
    }

    async fn forget_provider_request(&self, execution_id: i64) -> StoreResult<()> {
        self.write_locking(move |conn| provider_requests::forget(conn, execution_id)).await
    }

    fn metrics(&self) -> &crate::metrics::StoreMetrics {
        self.engine.metrics()
    }

    async fn sweep_expired(&self, now: Timestamp, retention: Retention, limit: u32) -> StoreResult<u64> {
        let minute = move |age: time::Duration| (now - age).unix_timestamp().div_euclid(60);
        self.write(move |conn| {
            let expired = money::retention::sweep_expired(conn, now, now - retention.operator_requests, limit)?;
            let logins = sessions::sweep(conn, now, limit)?.max(members::sweep_invitations(conn, now, limit)?) as u64;
            let hours = usage::roll_up(conn, minute(retention.usage_minutes), usage::Bucket::Hour, limit)?;
            let days = usage::roll_up(conn, minute(retention.usage_hours), usage::Bucket::Day, limit)?;
            Ok(expired.max(logins).max(hours).max(days))
        })
        .await
    }

    async fn ready(&self) -> StoreResult<()> {
        self.engine.ready().await
    }

    async fn verify_ledger(&self) -> StoreResult<Vec<String>> {
        self.engine.snapshot(|conn| money::read::verify(conn)).await
    }
}
