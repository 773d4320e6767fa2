//! The keys table's filters (status, tool, environment, expiring within 7 days, unused for 30
//! days) and sort (any column, either way). The API pages keys newest first by cursor and has
//! no such filters, so a filtered or sorted table reads the account's keys through the API's
//! own list (`app::keys::list`, 100 a page, at most `MAX_KEYS`) and narrows and orders
//! them here; without a filter or sort, the table pages with the API's cursors as before.

use super::layout::given;
use crate::wire::keys::KeyView;
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The most keys a filtered view reads (the page says so when there are more).
pub const MAX_KEYS: usize = 1000;

const STATUSES: [&str; 3] = ["active", "expired", "revoked"];
const SORTS: [(&str, &str); 7] = [
    ("created", "Created"),
    ("label", "Label"),
    ("last_used", "Last used"),
    ("spent_today", "Used today"),
    ("spent_total", "Used in total"),
    ("expires", "Expiry"),
    ("status", "Status"),
];

#[derive(Debug, Default, Deserialize)]
pub struct KeyFilter {
    status: Option<String>,
    tool: Option<String>,
    environment: Option<String>,
    expiring: Option<String>,
    unused: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

fn instant(text: Option<&str>) -> Option<OffsetDateTime> {
    text.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

impl KeyFilter {
    /// Whether the table must be narrowed or ordered here (else: the API's cursor pages).
    pub fn active(&self) -> bool {
        [&self.status, &self.tool, &self.environment, &self.expiring, &self.unused, &self.sort]
            .iter()
            .any(|v| given(v).is_some())
    }

    fn keeps(&self, key: &KeyView, now: OffsetDateTime) -> bool {
        let status = given(&self.status).is_none_or(|s| key.status == s);
        let tool = given(&self.tool)
            .is_none_or(|t| key.tool_scope == "all_supported_tools" || key.allowed_tools.iter().any(|a| a == t));
        let environment = given(&self.environment).is_none_or(|e| key.environment == e);
        let expiring = given(&self.expiring).is_none()
            || instant(key.expires_at.as_deref()).is_some_and(|at| at > now && at <= now + time::Duration::days(7));
        let unused = given(&self.unused).is_none()
            || instant(key.last_used_at.as_deref()).is_none_or(|at| at < now - time::Duration::days(30));
        status && tool && environment && expiring && unused
    }

    /// The keys this filter keeps, in its order (default: newest first).
    pub fn apply(&self, mut keys: Vec<KeyView>, now: OffsetDateTime) -> Vec<KeyView> {
        keys.retain(|k| self.keeps(k, now));
        let never = OffsetDateTime::UNIX_EPOCH;
        match given(&self.sort).unwrap_or("created") {
            "label" => keys.sort_by_key(|k| k.label.to_lowercase()),
            "last_used" => keys.sort_by_key(|k| instant(k.last_used_at.as_deref()).unwrap_or(never)),
            "spent_today" => keys.sort_by_key(|k| k.spent_today_cents),
            "spent_total" => keys.sort_by_key(|k| k.spent_total_cents),
            "expires" => keys.sort_by_key(|k| {
                let at = instant(k.expires_at.as_deref());
                (at.is_none(), at)
            }),
            "status" => keys.sort_by(|a, b| a.status.cmp(&b.status)),
            _ => keys.sort_by_key(|k| k.id),
        }
        // Text columns read A→Z by default; numbers and times largest/newest first.
        let ascending_by_default = matches!(given(&self.sort), Some("label" | "status" | "expires"));
        let ascending = match given(&self.order) {
            Some("asc") => true,
            Some("desc") => false,
            _ => ascending_by_default,
        };
        if !ascending {
            keys.reverse();
        }
        keys
    }

    /// The filter form; `tools` are the catalog's ids.
    pub fn form(&self, tools: &[String]) -> Markup {
        let select = |id: &str, label: &str, current: Option<&str>, options: &[(&str, &str)]| {
            html! {
                label for=(id) { (label) }
                select id=(id) name=(id) {
                    @for (value, text) in options {
                        @if current.unwrap_or("") == *value { option value=(value) selected { (text) } }
                        @else { option value=(value) { (text) } }
                    }
                }
            }
        };
        let mut statuses = vec![("", "any")];
        statuses.extend(STATUSES.iter().map(|s| (*s, *s)));
        let mut tool_options = vec![("", "any")];
        tool_options.extend(tools.iter().map(|t| (t.as_str(), t.as_str())));
        let environments = [("", "any"), ("production", "production"), ("preview", "preview")];
        let mut sorts = vec![("", "Newest first")];
        sorts.extend(SORTS.iter().copied());
        let orders = [("", "default"), ("asc", "ascending"), ("desc", "descending")];
        html! {
            form.filters method="get" action=(super::paths::KEYS) {
                (select("status", "Status", given(&self.status), &statuses))
                (select("tool", "Tool", given(&self.tool), &tool_options))
                (select("environment", "Environment", given(&self.environment), &environments))
                (select("sort", "Sort by", given(&self.sort), &sorts))
                (select("order", "Order", given(&self.order), &orders))
                label.check for="expiring" {
                    @if given(&self.expiring).is_some() { input #expiring type="checkbox" name="expiring" value="7d" checked; }
                    @else { input #expiring type="checkbox" name="expiring" value="7d"; }
                    " Expiring in 7 days"
                }
                label.check for="unused" {
                    @if given(&self.unused).is_some() { input #unused type="checkbox" name="unused" value="30d" checked; }
                    @else { input #unused type="checkbox" name="unused" value="30d"; }
                    " Unused for 30 days"
                }
                button type="submit" { "Apply" }
                @if self.active() { " " a href=(super::paths::KEYS) { "Clear filters" } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64, label: &str, status: &str, last_used: Option<&str>, expires: Option<&str>) -> KeyView {
        serde_json::from_value(serde_json::json!({
            "id": id, "label": label, "owner": "o", "key_prefix": "p", "environment": "production",
            "tool_scope": "restricted", "allowed_tools": ["echo"], "allowed_cidrs": [], "daily_cap_cents": 100,
            "total_cap_cents": null, "expires_at": expires, "read_only": false, "rate_limit_per_second": 10, "idempotency": "required",
            "cap_alert_percent": 80, "end_user": "optional",
            "status": status, "created_at": "2026-12-01T00:00:00Z", "revoked_at": null,
            "last_used_at": last_used, "last_used_ip": null, "spent_today_cents": id, "spent_total_cents": 10 - id,
            "secrets": []
        }))
        .unwrap()
    }

    fn filter(query: &str) -> KeyFilter {
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        axum::extract::Query::<KeyFilter>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn filters_narrow_and_sorts_order() {
        let now = OffsetDateTime::parse("2026-12-05T00:00:00Z", &Rfc3339).unwrap();
        let keys = || {
            vec![
                key(1, "b", "active", Some("2026-12-04T00:00:00Z"), Some("2026-12-08T00:00:00Z")),
                key(2, "A", "revoked", None, None),
                key(3, "c", "active", Some("2026-10-01T00:00:00Z"), Some("2027-06-01T00:00:00Z")),
            ]
        };
        let ids = |f: &str| filter(f).apply(keys(), now).iter().map(|k| k.id).collect::<Vec<_>>();
        assert_eq!(ids(""), [3, 2, 1]);
        assert_eq!(ids("status=active"), [3, 1]);
        assert_eq!(ids("expiring=7d"), [1]);
        assert_eq!(ids("unused=30d"), [3, 2]);
        assert_eq!(ids("tool=fail"), Vec::<i64>::new());
        assert_eq!(ids("sort=label"), [2, 1, 3]);
        assert_eq!(ids("sort=label&order=desc"), [3, 1, 2]);
        assert_eq!(ids("sort=spent_today"), [3, 2, 1]);
        assert_eq!(ids("sort=last_used"), [1, 3, 2]);
        assert!(!filter("").active() && filter("sort=label").active());
    }
}
