//! The records a `Store` reads and writes. They hold validated domain values; converting
//! them to the API's JSON is the server's job.

use std::net::IpAddr;
use time::OffsetDateTime;
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::policy::{CidrAllowlist, KeyLabel, ToolGrant};
use visa_core::role::Role;
use visa_core::secret::SecretHash;

pub type Timestamp = OffsetDateTime;

pub use visa_core::id::{AccountId, AdminKeyId, KeyId, MemberId, SecretId, SessionId, WebhookId};
pub use visa_core::policy::EndUser;

pub use crate::rules::HoldRefusal;

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub login: String,
    pub approved: bool,
    /// Money on the account, holds included.
    pub balance: Micros,
    /// Money reserved by holds of running executions.
    pub held: Micros,
    pub created_at: Timestamp,
    /// The available balances (cents) under which `balance.low` fires, once per crossing.
    pub low_balance_thresholds_cents: Vec<i64>,
}

/// A new account and its first member, the owner, who has the account's login.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub login: String,
    /// The owner's password (argon2id PHC string); without one the owner signs in only with
    /// the session token minted at creation.
    pub password_hash: Option<String>,
    pub approved: bool,
    pub credit: Micros,
}

/// A person in an account. Logins are unique across the server: a login signs in to one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: MemberId,
    pub account_id: AccountId,
    pub login: String,
    pub role: Role,
    pub created_at: Timestamp,
    /// argon2id PHC string, once the member has a password.
    pub password_hash: Option<String>,
    /// Set while an invitation is pending: the member has not accepted it yet.
    pub invite_expires_at: Option<Timestamp>,
}

/// An invitation: the member exists at once (with its role) and signs in after accepting.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub login: String,
    pub role: Role,
    /// Hash of the one-time invitation token.
    pub invite_hash: SecretHash,
    pub invite_expires_at: Timestamp,
}

/// Who made a change: what the audit log records as the actor.
#[derive(Debug, Clone, PartialEq)]
pub enum Actor {
    Operator,
    Member {
        id: MemberId,
        login: String,
    },
    AdminKey {
        id: AdminKeyId,
        label: String,
    },
    /// An OAuth client acting on the grant a member approved (it redeems a code, refreshes).
    OAuthClient {
        id: i64,
        name: String,
    },
    /// The server itself, acting on a rule (it disables a webhook endpoint that has failed for
    /// five days in a row).
    System,
}

/// Who is changing something, from where, and when: every control-plane mutation of the
/// store takes one and writes its audit entry in the same transaction as the change.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: Actor,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub now: Timestamp,
}

/// One audit log entry. `changes` maps each changed field to `{"before": .., "after": ..}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub account_id: AccountId,
    pub actor: Actor,
    /// e.g. `key.updated`, `member.role_changed`.
    pub action: String,
    /// e.g. `key:12`, `member:3`.
    pub target: String,
    pub changes: serde_json::Value,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
}

/// Filters of the audit log; each one set must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<Timestamp>,
}

/// Why a key is being revoked: by request, or because its raw value was found in public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeCause {
    Requested,
    Leaked,
    /// An OAuth code or refresh token was presented a second time: someone else may hold it.
    OAuthReplay,
}

/// A session to open. Where it was opened (IP, user agent) and who opened it (the member
/// signing in, or the operator creating the account) come from its `AuditContext`.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub account_id: AccountId,
    pub member_id: MemberId,
    pub token_hash: SecretHash,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A live session as its member (or an owner or admin) sees it: never the token.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub member_id: MemberId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// Whether this is the session asking.
    pub current: bool,
}

/// Which of a member's sessions to end.
#[derive(Debug, Clone)]
pub enum SessionsToEnd {
    /// One session, by id (`NotFound` unless it is the member's and live).
    One(SessionId),
    /// Every session, except the one with this token (the caller's own) if given.
    AllExcept(Option<SecretHash>),
}

/// A secret of a key. A key has one, or two during a rotation's grace period.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecord {
    pub id: SecretId,
    pub key_prefix: String,
    pub created_at: Timestamp,
    /// Set by a rotation: the secret stops working at this instant.
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<IpAddr>,
}

impl SecretRecord {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// The policy part of a key that create and update set.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub label: KeyLabel,
    pub grant: ToolGrant,
    pub allowed_cidrs: CidrAllowlist,
    pub daily_cap_cents: i64,
    pub total_cap_cents: Option<i64>,
    pub expires_at: Option<Timestamp>,
    pub read_only: bool,
    /// Token-bucket rate and burst, requests per second.
    pub rate_limit_per_second: u32,
    /// Whether the OpenAI-compatible surface takes this key's calls without an
    /// Idempotency-Key (an SDK's retries may then be charged twice).
    pub idempotency_optional: bool,
    /// The share of a cap (1 to 100 %) whose passing sends `key.cap.threshold`.
    pub cap_alert_percent: u8,
    /// Whether every paid call must name its end user (docs/end-users.md).
    pub end_user_required: bool,
    /// What each end user of the key may spend, per UTC day and in total (docs/end-users.md).
    pub end_user_caps: EndUserCaps,
}

/// What one end user of a key spent and holds, on one UTC day and in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndUserSpend {
    pub spent_day: Micros,
    pub held_day: Micros,
    pub spent_total: Micros,
    pub held_total: Micros,
}

/// A key's caps on each of its end users, in cents; `None` is no such cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndUserCaps {
    pub daily_cents: Option<i64>,
    pub total_cents: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: KeyId,
    pub account_id: AccountId,
    pub owner: String,
    pub environment: Environment,
    pub policy: KeyPolicy,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<IpAddr>,
    /// The newest UTC day (days since 1970-01-01) a hold of this key counted on, and its
    /// captured and held micros. A key's day never moves backwards (`rules::hold_day`).
    pub latest_day: i64,
    pub spent_day: Micros,
    pub held_day: Micros,
    pub spent_total: Micros,
    pub held_total: Micros,
    /// Newest first.
    pub secrets: Vec<SecretRecord>,
}

impl KeyRecord {
    /// Spend on the day a hold placed on `day_number` would count on (zero once the day has
    /// turned; the key's latest day if the clock is behind it).
    pub fn spent_on(&self, day_number: i64) -> Micros {
        if self.latest_day >= day_number { self.spent_day } else { Micros::ZERO }
    }

    /// Held by running calls on that same day (as `spent_on`).
    pub fn held_on(&self, day_number: i64) -> Micros {
        if self.latest_day >= day_number { self.held_day } else { Micros::ZERO }
    }

    /// The prefix of the newest secret, which is what the owner currently deploys.
    pub fn key_prefix(&self) -> &str {
        self.secrets.first().map(|s| s.key_prefix.as_str()).unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct NewSecret {
    pub hash: SecretHash,
    pub key_prefix: String,
    /// When it stops working by itself (an OAuth access token); `None`: when the key does.
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub account_id: AccountId,
    pub environment: Environment,
    pub policy: KeyPolicy,
    pub secret: NewSecret,
}

/// Fields to change on a key; `None` leaves a field as it is. The nested options of
/// nullable fields distinguish "leave" (`None`) from "clear" (`Some(None)`).
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub label: Option<KeyLabel>,
    pub grant: Option<ToolGrant>,
    pub allowed_cidrs: Option<CidrAllowlist>,
    pub daily_cap_cents: Option<i64>,
    pub total_cap_cents: Option<Option<i64>>,
    pub expires_at: Option<Option<Timestamp>>,
    pub read_only: Option<bool>,
    pub rate_limit_per_second: Option<u32>,
    pub idempotency_optional: Option<bool>,
    pub cap_alert_percent: Option<u8>,
    pub end_user_required: Option<bool>,
    pub end_user_daily_cap_cents: Option<Option<i64>>,
    pub end_user_total_cap_cents: Option<Option<i64>>,
}

/// How a key's `end_user_required` is named on the API, the CLI and in the audit log:
/// `required`, or `optional` (the default).
pub fn end_user_rule_name(required: bool) -> &'static str {
    if required { "required" } else { "optional" }
}

/// How a key's `idempotency_optional` is named on the API, the CLI, the dashboard and in the
/// audit log: `optional`, or `required` (the default).
pub fn idempotency_name(optional: bool) -> &'static str {
    if optional { "optional" } else { "required" }
}

impl KeyPolicy {
    /// The policy with `patch` applied: each field it sets replaces this one's (every
    /// backend applies a PATCH by this rule, then stores the result).
    pub fn apply(&mut self, patch: &KeyPatch) {
        if let Some(label) = patch.label.clone() {
            self.label = label;
        }
        if let Some(grant) = patch.grant.clone() {
            self.grant = grant;
        }
        if let Some(cidrs) = patch.allowed_cidrs.clone() {
            self.allowed_cidrs = cidrs;
        }
        if let Some(cap) = patch.daily_cap_cents {
            self.daily_cap_cents = cap;
        }
        if let Some(cap) = patch.total_cap_cents {
            self.total_cap_cents = cap;
        }
        if let Some(at) = patch.expires_at {
            self.expires_at = at;
        }
        if let Some(read_only) = patch.read_only {
            self.read_only = read_only;
        }
        if let Some(rate) = patch.rate_limit_per_second {
            self.rate_limit_per_second = rate;
        }
        if let Some(optional) = patch.idempotency_optional {
            self.idempotency_optional = optional;
        }
        if let Some(percent) = patch.cap_alert_percent {
            self.cap_alert_percent = percent;
        }
        if let Some(required) = patch.end_user_required {
            self.end_user_required = required;
        }
        if let Some(cap) = patch.end_user_daily_cap_cents {
            self.end_user_caps.daily_cents = cap;
        }
        if let Some(cap) = patch.end_user_total_cap_cents {
            self.end_user_caps.total_cents = cap;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rotation {
    pub secret: NewSecret,
    /// When the current secrets stop working; the rotation's time ends them at once.
    pub old_secrets_end: Timestamp,
}

/// What authentication needs about a presented secret.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    pub key: KeyRecord,
    pub secret_id: SecretId,
    pub secret_hash: SecretHash,
    pub account_approved: bool,
    /// For the key an OAuth consent minted: the one resource (MCP URL) its tokens are
    /// accepted at; `None` for a key created as a key (accepted on every surface).
    pub oauth_resource: Option<String>,
}

impl AuthRecord {
    pub fn secret(&self) -> Option<&SecretRecord> {
        self.key.secrets.iter().find(|s| s.id == self.secret_id)
    }

    /// What `rules` decides a call on, as this record says it at `now`.
    pub fn gate(&self, now: Timestamp) -> crate::rules::KeyGate<'_> {
        crate::rules::KeyGate {
            key_revoked: self.key.revoked_at.is_some(),
            secret_live: self.secret().is_some_and(|s| s.is_live(now)),
            expires_at: self.key.policy.expires_at,
            allowed_cidrs: &self.key.policy.allowed_cidrs,
            grant: &self.key.policy.grant,
            account_approved: self.account_approved,
            read_only: self.key.policy.read_only,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct KeyUse {
    pub key_id: KeyId,
    pub secret_id: SecretId,
    pub at: Timestamp,
    pub ip: IpAddr,
}

/// What a ledger entry records. Stored as its `as_str` (the schemas' CHECK lists the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// Money added to an account.
    Credit,
    /// Money set aside for one call.
    Hold,
    /// What the call cost, taken from its hold.
    Capture,
    /// The rest of a hold, given back.
    Release,
    /// A whole hold given back (the call failed or never ran).
    Void,
    /// What a provider reported beyond the hold: the platform's loss, moving no counter.
    Overage,
}

impl LedgerKind {
    pub const ALL: [Self; 6] = [Self::Credit, Self::Hold, Self::Capture, Self::Release, Self::Void, Self::Overage];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Hold => "hold",
            Self::Capture => "capture",
            Self::Release => "release",
            Self::Void => "void",
            Self::Overage => "overage",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Where an execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionState {
    /// Hold placed, tool running.
    Running,
    /// Captured (possibly zero), response stored.
    Succeeded,
    /// Failed for good (e.g. the provider refused the input); hold voided, answer stored.
    Failed,
    /// The server stopped between hold and outcome; an operator must capture or void.
    ReconcileRequired,
    /// Failed in a way worth retrying; hold voided, Idempotency-Key freed.
    Voided,
}

impl ExecutionState {
    pub const ALL: [Self; 5] = [Self::Running, Self::Succeeded, Self::Failed, Self::ReconcileRequired, Self::Voided];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::ReconcileRequired => "reconcile_required",
            Self::Voided => "voided",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The states that still hold money: running, or waiting for an operator's decision. The
    /// one definition of an open execution (Rust and SQL alike read it from here).
    pub const OPEN: [Self; 2] = [Self::Running, Self::ReconcileRequired];

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub id: i64,
    pub public_id: String,
    pub account_id: AccountId,
    pub key_id: KeyId,
    pub tool: String,
    pub state: ExecutionState,
    /// Preview: caps counted, balance untouched, nothing charged to the account.
    pub sandbox: bool,
    pub hold: Micros,
    /// What the account paid (zero in sandbox).
    pub charged: Micros,
    pub receipt_id: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// UTC day of the hold: the daily-cap bucket it counts in.
    pub day_number: i64,
    /// The end user the call was made for, as its caller named it.
    pub end_user: Option<EndUser>,
}

/// The clock a key's rate limit counts in. Every node's calls move one rate-limit state, so
/// they must read one clock: the database's, whose own clock no node's error can move (a node
/// a minute fast would otherwise leave the key refused on every other node for that minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClock {
    /// The database's clock, read in the hold's transaction.
    Database,
    /// A given instant (a test that steps the rate limit through time).
    At(Timestamp),
}

/// Everything needed to record an Idempotency-Key and place a hold, atomically.
#[derive(Debug, Clone)]
pub struct ExecutionStart {
    /// The node running the call: if its lease expires before the call ends, the call becomes
    /// `reconcile_required`.
    pub node: NodeId,
    pub public_id: String,
    pub account_id: AccountId,
    pub key_id: KeyId,
    /// The secret the call was authenticated with: the hold re-checks it is still live.
    pub secret_id: SecretId,
    /// The caller's address: the hold re-checks the key's CIDR allowlist.
    pub client_ip: std::net::IpAddr,
    /// The Idempotency-Key's 16 bytes (a UUID), compact in the index it is looked up by.
    pub idempotency_key: [u8; 16],
    pub request_hash: [u8; 32],
    pub tool: String,
    pub hold: Micros,
    /// The key's request rate, as authenticated (`rules::RateWindow`).
    pub rate_limit_per_second: u32,
    /// The clock the rate limit counts in, one for every node.
    pub rate_clock: RateClock,
    pub sandbox: bool,
    pub now: Timestamp,
    /// UTC day number of `now`; the hold counts on this day or the key's latest, if later.
    pub day_number: i64,
    pub idempotency_expires_at: Timestamp,
    /// The end user the call is made for, if its caller named one.
    pub end_user: Option<EndUser>,
}

/// A server process sharing the store, known by the lease it renews (`Store::register_node`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub i64);

/// What `begin_execution` decided. (`S` is what a new call carries: a `Hold` for the server,
/// the bare execution inside a backend's transaction.)
#[derive(Debug, Clone, PartialEq)]
pub enum BeginOutcome<S = crate::Hold> {
    /// New: the Idempotency-Key is recorded and the hold placed; run the tool.
    Started(S),
    /// Done before: send this stored response again.
    Replay {
        status: u16,
        body: Vec<u8>,
    },
    /// The same Idempotency-Key with a different request.
    Mismatch,
    /// The original request is still running.
    InFlight,
    /// The original's outcome was lost in a crash; an operator must reconcile it.
    ReconcileRequired(ExecutionRecord),
    Refused(HoldRefusal),
}

impl<S> BeginOutcome<S> {
    /// The same outcome with what `Started` carries turned by `f`.
    pub fn map_started<T>(self, f: impl FnOnce(S) -> T) -> BeginOutcome<T> {
        match self {
            BeginOutcome::Started(s) => BeginOutcome::Started(f(s)),
            BeginOutcome::Replay { status, body } => BeginOutcome::Replay { status, body },
            BeginOutcome::Mismatch => BeginOutcome::Mismatch,
            BeginOutcome::InFlight => BeginOutcome::InFlight,
            BeginOutcome::ReconcileRequired(e) => BeginOutcome::ReconcileRequired(e),
            BeginOutcome::Refused(r) => BeginOutcome::Refused(r),
        }
    }
}

/// How a running execution ends.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Capture what the provider reported (clamped to the hold by `rules::settle`, any excess
    /// recorded as an overage), release the rest, keep the response for replay.
    Capture { reported: Micros, receipt_id: String, status: u16, body: Vec<u8> },
    /// Void the hold and free the Idempotency-Key for a retry.
    VoidRetryable,
    /// Void the hold and keep this answer for replays of the same request.
    VoidFinal { status: u16, body: Vec<u8> },
}

impl Finish {
    /// The state the execution ends in.
    pub fn state(&self) -> ExecutionState {
        match self {
            Self::Capture { .. } => ExecutionState::Succeeded,
            Self::VoidRetryable => ExecutionState::Voided,
            Self::VoidFinal { .. } => ExecutionState::Failed,
        }
    }

    /// The answer it stores for replays (status and body); a retryable void stores none.
    pub fn answer(&self) -> Option<(u16, Vec<u8>)> {
        match self {
            Self::Capture { status, body, .. } | Self::VoidFinal { status, body } => Some((*status, body.clone())),
            Self::VoidRetryable => None,
        }
    }
}

/// A queue-style tool's request at its provider, as an earlier attempt left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderRequest {
    /// The submission was sent and its answer (the request id) has not come back yet.
    Submitting,
    /// The provider's request id.
    Submitted(String),
}

/// An operator's request under its Idempotency-Key: a retry of the same request answers the
/// first outcome and changes nothing; the same key with another request is a `Conflict`.
#[derive(Debug, Clone)]
pub struct OperatorRequest {
    pub idempotency_key: String,
    /// What the request was (e.g. `request_fingerprint` of its route and body).
    pub fingerprint: [u8; 32],
}

/// An operator's decision on a `reconcile_required` execution.
#[derive(Debug, Clone)]
pub enum Reconcile {
    /// Charge this much (at most the hold), with this receipt id and the answer replays get
    /// until `retain_until` (a full retention from the decision).
    Capture { cost: Micros, receipt_id: String, status: u16, body: Vec<u8>, retain_until: Timestamp },
    /// Charge nothing and free the Idempotency-Key.
    Void,
}

/// Filters for execution lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutionFilter {
    pub account_id: Option<AccountId>,
    pub key_id: Option<KeyId>,
    pub state: Option<ExecutionState>,
    /// Created at or after this, and before `created_before`.
    pub created_from: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
}

/// What the retention sweep keeps (`Store::sweep_expired`); Idempotency-Key records carry
/// their own expiry.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// The operator's Idempotency-Keys (credits, reconciles) are kept this long.
    pub operator_requests: time::Duration,
    /// Usage is kept per minute this long, then per hour.
    pub usage_minutes: time::Duration,
    /// Usage is kept per hour this long, then per day (kept for good: one row per secret-day).
    pub usage_hours: time::Duration,
    /// Webhook attempts, and events whose deliveries all ended, are kept this long.
    pub webhook_log: time::Duration,
}

/// Requests of one key secret in one UTC minute (minutes since the Unix epoch; a rolled-up
/// hour or day is the row of its first minute).
/// What one key spent on one UTC day (captured charges; in preview, what would have been).
#[derive(Debug, Clone, PartialEq)]
pub struct DaySpend {
    pub day_number: i64,
    pub key_id: KeyId,
    pub spent: Micros,
}

/// The buckets of a spend series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn hours(self) -> i64 {
        match self {
            Granularity::Hour => 1,
            Granularity::Day => 24,
        }
    }
}

/// What a spend series is split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesGroup {
    None,
    Key,
    Tool,
    /// Per UTC day only (`spend_end_user_days`).
    EndUser,
}

/// A spend series to read: an account's (or one of its keys') calls in the buckets from
/// `from_bucket` (inclusive) to `to_bucket` (exclusive), counted in hours or days since 1970.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRequest {
    pub account_id: AccountId,
    pub key_id: Option<KeyId>,
    pub granularity: Granularity,
    pub group: SeriesGroup,
    pub from_bucket: i64,
    pub to_bucket: i64,
}

/// The outcome a spend series counts a call that ended under (succeeded, failed or voided);
/// a refused call is counted under the name of the limit that refused it (`rules::Limit`).
pub const ENDED_OUTCOME: &str = "ended";

/// One bucket of a spend series, for one group and outcome (`ended`, or the limit that
/// refused the calls): how many calls, and what the account was charged for them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub bucket: i64,
    /// The key id, tool or end user; `None` for an ungrouped series.
    pub group: Option<String>,
    pub outcome: String,
    pub calls: i64,
    pub charged: Micros,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageCount {
    pub key_id: KeyId,
    pub secret_id: SecretId,
    pub minute: i64,
    pub requests: u64,
    pub successes: u64,
    /// error_code -> count.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// What the account was charged for executions started in that minute (from `executions`).
    pub charged: Micros,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminKeyRecord {
    pub id: AdminKeyId,
    pub account_id: AccountId,
    pub label: KeyLabel,
    pub environment: Environment,
    pub key_prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// An OAuth client that registered itself (RFC 7591): a public client (PKCE, no secret).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthClient {
    /// The row's id (the audit log's actor id).
    pub id: i64,
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// The optional RFC 7591 fields it sent (client_uri, logo_uri, …), answered back as sent.
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewOAuthClient {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub metadata: serde_json::Value,
}

/// A member's consent: the key it mints (its policy the member chose), for which client (as
/// the consent page read it), at which resource, and the authorization code that hands it over.
#[derive(Debug, Clone)]
pub struct OAuthApproval {
    pub key: NewKey,
    pub client: OAuthClient,
    pub member_id: MemberId,
    pub resource: String,
    pub code: SecretHash,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub code_expires_at: Timestamp,
}

/// An authorization code as redeemed: what it was issued for, and whether this was its first
/// presentation (a code works once).
#[derive(Debug, Clone)]
pub struct RedeemedCode {
    pub key_id: KeyId,
    pub account_id: AccountId,
    pub client: i64,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub expires_at: Timestamp,
    pub first_use: bool,
}

/// The tokens a redemption or a refresh issues: the access token (a secret of the grant's key,
/// ending by itself) and the refresh token's hash.
#[derive(Debug, Clone)]
pub struct OAuthTokens {
    pub access: NewSecret,
    pub refresh: SecretHash,
}

/// What a refresh token did.
#[derive(Debug, Clone)]
pub enum Refreshed {
    /// New tokens for the grant's key; the old refresh token and access token ended.
    Tokens(Box<KeyRecord>),
    /// Not a refresh token of this client (or of any).
    Unknown,
    /// Already used once: the grant's key (this one) is now revoked, since someone else may
    /// hold the token.
    Replayed(KeyId),
    /// The grant's key is revoked or expired.
    Ended,
}

/// A connected client as the dashboard lists it: the grant's key (its spend and last use), the
/// client, who approved it and when.
#[derive(Debug, Clone)]
pub struct OAuthGrant {
    pub key: KeyRecord,
    pub client: OAuthClient,
    pub approved_by: String,
    pub resource: String,
    pub created_at: Timestamp,
}

/// A webhook endpoint of an account. Its signing secret is never stored: it is derived from
/// the server's webhook key and `secret_salt` (and, during a rotation's overlap, also from
/// `previous_salt` until `previous_until`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub account_id: AccountId,
    pub url: String,
    /// The event types it receives (`*`: all).
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// Why the server disabled it (`gone`: it answered 410; `failing`: it failed for days).
    pub disabled_reason: Option<String>,
    pub secret_salt: Vec<u8>,
    pub previous_salt: Option<Vec<u8>>,
    pub previous_until: Option<Timestamp>,
    /// Since when every attempt to it has failed (cleared by a delivery).
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether it receives events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == kind)
    }
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub account_id: AccountId,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub secret_salt: Vec<u8>,
}

/// A change to an endpoint: each `Some` field replaces the stored one. Enabling it again
/// clears the reason the server disabled it.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// A delivery a node has leased and now attempts: the event's bytes and where they go.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery_id: i64,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The event's id, sent as `webhook-id` on every attempt.
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub endpoint: WebhookEndpoint,
}

/// What one attempt got, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptLog {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The first KB of the answer.
    pub response: String,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    Delivered,
    RetryAt(Timestamp),
    /// The schedule is spent: the delivery failed.
    GiveUp,
    /// The endpoint answered 410 Gone: it is disabled, and its pending deliveries with it.
    Gone,
}

/// One logged attempt, as `GET /v1/api/webhooks/:id/deliveries` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAttempt {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub attempt: u32,
    pub log: AttemptLog,
    pub created_at: Timestamp,
}

/// Which events `replay` sends an endpoint again.
#[derive(Debug, Clone)]
pub enum Replay {
    /// This one (by its `webhook-id`), whatever became of it.
    Event(String),
    /// Every delivery to it that failed, of events since then.
    FailedSince(Timestamp),
}
