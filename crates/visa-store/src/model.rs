//! The records a `Store` reads and writes. They hold validated domain values; converting
//! them to the API's JSON is the server's job.

use std::net::IpAddr;
use time::OffsetDateTime;
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::policy::{CidrAllowlist, KeyLabel, ToolGrant};
use visa_core::secret::SecretHash;

pub type Timestamp = OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: i64,
    pub login: String,
    pub approved: bool,
    /// Money on the account, holds included.
    pub balance: Micros,
    /// Money reserved by holds of running executions.
    pub held: Micros,
    pub created_at: Timestamp,
    /// argon2id PHC string, when the account can sign in with a password.
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub login: String,
    pub password_hash: Option<String>,
    pub approved: bool,
    pub credit: Micros,
    pub now: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub account_id: i64,
    pub token_hash: SecretHash,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A secret of a key. A key has one, or two during a rotation's grace period.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecord {
    pub id: i64,
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
}

#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: i64,
    pub account_id: i64,
    pub owner: String,
    pub environment: Environment,
    pub policy: KeyPolicy,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<IpAddr>,
    /// UTC day number (days since 1970-01-01) that `spent_day` counts.
    pub spent_day_number: i64,
    pub spent_day: Micros,
    pub spent_total: Micros,
    /// Newest first.
    pub secrets: Vec<SecretRecord>,
}

impl KeyRecord {
    /// Spend on the given UTC day (zero once the day has turned).
    pub fn spent_on(&self, day_number: i64) -> Micros {
        if self.spent_day_number == day_number { self.spent_day } else { Micros::ZERO }
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
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub account_id: i64,
    pub environment: Environment,
    pub policy: KeyPolicy,
    pub secret: NewSecret,
    pub now: Timestamp,
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
}

#[derive(Debug, Clone)]
pub struct Rotation {
    pub secret: NewSecret,
    pub now: Timestamp,
    /// When the current secrets stop working; `now` ends them at once.
    pub old_secrets_end: Timestamp,
}

/// What authentication needs about a presented secret.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    pub key: KeyRecord,
    pub secret_id: i64,
    pub secret_hash: SecretHash,
    pub account_approved: bool,
}

impl AuthRecord {
    pub fn secret(&self) -> Option<&SecretRecord> {
        self.key.secrets.iter().find(|s| s.id == self.secret_id)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct KeyUse {
    pub key_id: i64,
    pub secret_id: i64,
    pub at: Timestamp,
    pub ip: IpAddr,
}
