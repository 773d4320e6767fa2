//! How records are spelled in SQL columns, once for every SQL backend: times as integer
//! microseconds since the Unix epoch, a key's tool grant and source CIDRs as JSON lists of
//! strings. A value that does not read back names its column, so the backend can report a
//! corrupt row instead of guessing.

use crate::model::Timestamp;
use visa_core::policy::{CidrAllowlist, ToolGrant, ToolScope};

pub fn to_db(t: Timestamp) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_db(micros: i64) -> Timestamp {
    Timestamp::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `(tool_scope, allowed_tools)` of a grant.
pub fn grant_to_db(grant: &ToolGrant) -> (&'static str, String) {
    (grant.scope().as_str(), serde_json::to_string(grant.tools()).expect("strings serialize"))
}

/// `allowed_cidrs` of an allowlist.
pub fn cidrs_to_db(cidrs: &CidrAllowlist) -> String {
    serde_json::to_string(&cidrs.to_strings()).expect("strings serialize")
}

/// The grant stored as `(tool_scope, allowed_tools)`; on failure, the column that is corrupt.
pub fn grant_from_db(scope: &str, tools: &str) -> Result<ToolGrant, &'static str> {
    let tools: Vec<String> = serde_json::from_str(tools).map_err(|_| "allowed_tools")?;
    let scope = ToolScope::parse(scope).map_err(|_| "tool_scope")?;
    ToolGrant::new(Some(scope), Some(tools)).map_err(|_| "allowed_tools")
}

/// The allowlist stored as `allowed_cidrs`; on failure, the column's name.
pub fn cidrs_from_db(cidrs: &str) -> Result<CidrAllowlist, &'static str> {
    let cidrs: Vec<String> = serde_json::from_str(cidrs).map_err(|_| "allowed_cidrs")?;
    CidrAllowlist::parse(&cidrs).map_err(|_| "allowed_cidrs")
}
