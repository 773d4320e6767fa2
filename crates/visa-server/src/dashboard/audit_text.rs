//! How an audit entry reads on the page: a sentence (who did what to which key or member, by
//! its label or login), each changed field in words and money (`daily cap: $2.00 → $5.00`), and
//! where it came from (the IP, a short user agent with the full one on demand). The API keeps
//! the raw entry (`wire::audit`); this is only its reading.

use crate::wire::audit::AuditEntryView;
use maud::{Markup, html};
use serde_json::Value;
use std::collections::BTreeMap;
use visa_core::money::{Micros, format_cents_as_dollars};

/// Names for the ids the entries' targets carry: key labels and member logins.
#[derive(Default)]
pub struct Names {
    pub keys: BTreeMap<i64, String>,
    pub members: BTreeMap<i64, String>,
}

impl Names {
    /// `key:12` → `key «label»`, `member:3` → `member ada`; else the target as it is.
    fn target(&self, target: &str) -> String {
        let (kind, id) = target.split_once(':').unwrap_or((target, ""));
        let id: Option<i64> = id.parse().ok();
        let named = |names: &BTreeMap<i64, String>| id.and_then(|id| names.get(&id)).cloned();
        match kind {
            "key" => named(&self.keys).map_or_else(|| format!("key {}", id.unwrap_or(0)), |l| format!("key “{l}”")),
            "member" => {
                named(&self.members).map_or_else(|| format!("member {}", id.unwrap_or(0)), |l| format!("member {l}"))
            }
            "admin_key" => format!("admin key {}", id.unwrap_or(0)),
            "execution" => format!("execution {}", target.trim_start_matches("execution:")),
            "account" => "the account".to_owned(),
            _ => target.to_owned(),
        }
    }
}

fn actor(entry: &AuditEntryView) -> String {
    match (entry.actor.kind.as_str(), &entry.actor.name) {
        ("operator", _) => "The operator".into(),
        ("system", _) => "Visa Keys".into(),
        ("admin_key", Some(name)) => format!("Admin key “{name}”"),
        ("oauth_client", Some(name)) => format!("Application “{name}”"),
        (_, Some(name)) => name.clone(),
        (kind, None) => kind.to_owned(),
    }
}

/// The entry as a sentence: `ada updated key “deploy-bot”`.
pub fn sentence(entry: &AuditEntryView, names: &Names) -> String {
    let target = names.target(&entry.target);
    let changed = |field: &str| entry.changes.get(field).is_some();
    let what = match entry.action.as_str() {
        "account.created" => "created the account".to_owned(),
        "account.approval_changed" => "changed the account's approval".to_owned(),
        "account.credited" => "credited the account".to_owned(),
        "admin_key.created" => format!("created {target}"),
        "admin_key.revoked" => format!("revoked {target}"),
        "key.created" => format!("created {target}"),
        "key.updated" => format!("updated {target}"),
        "key.rotated" => format!("rotated {target}"),
        "key.revoked" => format!("revoked {target}"),
        "key.revoked_leaked" => format!("revoked {target}, reported leaked"),
        "key.secret_revoked" => format!("revoked a secret of {target}"),
        "key.revoked_oauth_replay" => format!("revoked {target}: an OAuth code or refresh token was used twice"),
        "oauth.approved" => format!("connected an application with {target}"),
        "oauth.tokens_issued" => format!("received its first tokens for {target}"),
        "oauth.refreshed" => format!("refreshed its tokens for {target}"),
        "member.invited" => format!("invited {target}"),
        "member.joined" => "joined the account".to_owned(),
        "member.password_changed" => "changed their password".to_owned(),
        "member.removed" => format!("removed {target}"),
        "member.role_changed" => format!("changed the role of {target}"),
        "session.created" => "signed in".to_owned(),
        "session.ended" if changed("signed_out") => "signed out".to_owned(),
        "session.ended" => format!("ended sessions of {target}"),
        "execution.reconciled" => format!("reconciled {target}"),
        other => format!("{other} {target}"),
    };
    format!("{} {what}", actor(entry))
}

/// A field's name in words: `daily_cap_cents` → `daily cap`.
fn field_name(field: &str) -> String {
    field.trim_end_matches("_cents").trim_end_matches("_micros").replace('_', " ")
}

/// A value in words: money as dollars, instants as minutes in UTC, lists joined.
fn value_text(field: &str, value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "none".to_owned(),
        Some(v) if field.ends_with("_cents") && v.is_i64() => format_cents_as_dollars(v.as_i64().unwrap_or(0)),
        Some(v) if field.ends_with("_micros") => {
            let micros = v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
            micros.map_or_else(|| v.to_string(), |m| dollars_of_micros(Micros(m)))
        }
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_owned(),
        Some(Value::String(s)) => readable_instant(s).unwrap_or_else(|| s.clone()),
        Some(Value::Array(items)) if items.is_empty() => "none".to_owned(),
        Some(Value::Array(items)) => items.iter().map(|i| value_text(field, Some(i))).collect::<Vec<_>>().join(", "),
        Some(other) => other.to_string(),
    }
}

/// Dollars to the cent, or to the micro when the amount is not whole cents.
fn dollars_of_micros(micros: Micros) -> String {
    if micros.0 % 10_000 == 0 {
        format_cents_as_dollars(micros.0 / 10_000)
    } else {
        format!("${}.{:06}", micros.0 / 1_000_000, (micros.0 % 1_000_000).abs())
    }
}

fn readable_instant(text: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).ok()
}

/// Each changed field: `daily cap: $2.00 → $5.00`.
pub fn changes(entry: &AuditEntryView) -> Markup {
    let Some(fields) = entry.changes.as_object().filter(|f| !f.is_empty()) else { return html! {} };
    html! {
        ul.changes {
            @for (field, change) in fields {
                li {
                    (field_name(field)) ": "
                    @if change.get("before").is_some() || change.get("after").is_some() {
                        (value_text(field, change.get("before"))) " → " (value_text(field, change.get("after")))
                    } @else { (value_text(field, Some(change))) }
                }
            }
        }
    }
}

/// A user agent's first product (`visa-cli/0.1.0`, `Chrome 156`, `curl/8.5.0`).
fn short_agent(agent: &str) -> String {
    for (marker, name) in [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")] {
        if let Some(rest) = agent.split(marker).nth(1).filter(|_| agent.starts_with("Mozilla/")) {
            let major = rest.split(['.', ' ']).next().unwrap_or_default();
            return format!("{name} {major}");
        }
    }
    agent.split_whitespace().next().unwrap_or(agent).chars().take(40).collect()
}

/// Where an entry came from: the IP, and the user agent shortened with the whole on demand.
pub fn origin(entry: &AuditEntryView) -> Markup {
    html! {
        (entry.ip.as_deref().unwrap_or("—"))
        @if let Some(agent) = &entry.user_agent {
            details.agent { summary { (short_agent(agent)) } (agent) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_as_words_and_money() {
        assert_eq!(field_name("daily_cap_cents"), "daily cap");
        assert_eq!(value_text("daily_cap_cents", Some(&Value::from(200))), "$2.00");
        assert_eq!(value_text("charged_micros", Some(&Value::from("12345"))), "$0.012345");
        assert_eq!(value_text("charged_micros", Some(&Value::from("20000"))), "$0.02");
        assert_eq!(value_text("allowed_tools", Some(&serde_json::json!(["echo", "sleep"]))), "echo, sleep");
        assert_eq!(value_text("expires_at", Some(&Value::from("2027-01-05T22:49:48.68Z"))), "2027-01-05 22:49 UTC");
        assert_eq!(value_text("total_cap_cents", None), "none");
    }

    #[test]
    fn user_agents_are_shortened() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(short_agent(chrome), "Chrome 156");
        assert_eq!(short_agent("visa-cli/0.1.0 (linux)"), "visa-cli/0.1.0");
        assert_eq!(short_agent("curl/8.5.0"), "curl/8.5.0");
    }
}
