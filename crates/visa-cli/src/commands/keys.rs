//! `visa-cli keys ...`: the key lifecycle over the HTTP API.

use crate::cli::{CreateKeyArgs, KeysCommand, ListKeysArgs, UpdateKeyArgs};
use crate::output::{dollars, field, print_table};
use crate::settings;
use anyhow::bail;
use reqwest::Method;
use serde_json::{Map, Value, json};
use visa_core::money::format_cents_as_dollars;

const STORE_REMINDER: &str = "Store this key now (e.g. in your secret manager): it will not be shown again.";

pub async fn run(command: KeysCommand, json: bool) -> anyhow::Result<()> {
    // Usage is also readable with the key itself (VISA_API_KEY); the rest needs a session.
    let client = match command {
        KeysCommand::Usage { .. } => settings::reader_client()?,
        _ => settings::session_client()?,
    };
    match command {
        KeysCommand::Create(args) => {
            let body = create_body(args)?;
            let answer = client.send(Method::POST, "/v1/api/keys", Some(&body)).await?;
            warn_about_caps(&body, &answer.body);
            super::show(&answer, json, print_created);
        }
        KeysCommand::List(args) => {
            let answer = client.send(Method::GET, &list_path(&args), None).await?;
            super::show(&answer, json, print_list);
        }
        KeysCommand::Get { id } => {
            let answer = client.send(Method::GET, &format!("/v1/api/keys/{id}"), None).await?;
            super::show(&answer, json, print_key);
        }
        KeysCommand::Update(args) => {
            let id = args.id;
            let body = update_body(args)?;
            let answer = client.send(Method::PATCH, &format!("/v1/api/keys/{id}"), Some(&body)).await?;
            warn_about_caps(&body, &answer.body);
            super::show(&answer, json, print_key);
        }
        KeysCommand::Rotate { id, grace } => {
            let body = json!({ "grace_period_seconds": grace.unwrap_or(0) });
            let answer = client.send(Method::POST, &format!("/v1/api/keys/{id}/rotate"), Some(&body)).await?;
            super::show(&answer, json, print_created);
        }
        KeysCommand::Usage { id, granularity } => {
            let path = format!("/v1/api/keys/{id}/usage?granularity={granularity}");
            let answer = client.send(Method::GET, &path, None).await?;
            super::show(&answer, json, print_usage);
        }
        KeysCommand::Revoke { id } => {
            let answer = client.send(Method::DELETE, &format!("/v1/api/keys/{id}"), None).await?;
            super::show(&answer, json, |body| println!("Revoked key {}.", field(body, "revoked")));
        }
    }
    Ok(())
}

/// Says on stderr when the server stored a cap other than the one asked for (caps are clamped
/// to $0.01–$1,000,000), and when the daily cap is above the total cap (the total binds first).
fn warn_about_caps(asked: &Value, stored: &Value) {
    for (field, name) in [("daily_cap_cents", "daily cap"), ("total_cap_cents", "total cap")] {
        if let (Some(wanted), Some(got)) = (asked[field].as_i64(), stored[field].as_i64())
            && wanted != got
        {
            eprintln!(
                "note: the {name} is {} (asked {}): caps are clamped to $0.01-$1,000,000",
                format_cents_as_dollars(got),
                format_cents_as_dollars(wanted)
            );
        }
    }
    if let (Some(daily), Some(total)) = (stored["daily_cap_cents"].as_i64(), stored["total_cap_cents"].as_i64())
        && daily > total
    {
        eprintln!(
            "note: the daily cap ({}) is above the total cap ({}): the total cap is reached first",
            format_cents_as_dollars(daily),
            format_cents_as_dollars(total)
        );
    }
}

fn create_body(args: CreateKeyArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert("label".into(), json!(args.label));
    if let Some(tools) = args.tools {
        body.insert("allowed_tools".into(), json!(tools));
    }
    if let Some(cap) = args.daily_cap {
        body.insert("daily_cap_cents".into(), json!(super::cents("--daily-cap", &cap)?));
    }
    if let Some(cap) = args.total_cap {
        body.insert("total_cap_cents".into(), json!(super::cents("--total-cap", &cap)?));
    }
    if !args.cidrs.is_empty() {
        body.insert("allowed_cidrs".into(), json!(args.cidrs));
    }
    if let Some(at) = args.expires {
        body.insert("expires_at".into(), json!(at));
    }
    if args.read_only {
        body.insert("read_only".into(), json!(true));
    }
    if let Some(rate) = args.rate_limit {
        body.insert("rate_limit_per_second".into(), json!(rate));
    }
    if let Some(idempotency) = args.idempotency {
        body.insert("idempotency".into(), json!(idempotency));
    }
    if let Some(percent) = args.cap_alert_percent {
        body.insert("cap_alert_percent".into(), json!(percent));
    }
    if let Some(rule) = args.end_user {
        body.insert("end_user".into(), json!(rule));
    }
    if let Some(cap) = args.end_user_daily_cap {
        body.insert("end_user_daily_cap_cents".into(), json!(super::cents("--end-user-daily-cap", &cap)?));
    }
    if let Some(cap) = args.end_user_total_cap {
        body.insert("end_user_total_cap_cents".into(), json!(super::cents("--end-user-total-cap", &cap)?));
    }
    Ok(Value::Object(body))
}

fn update_body(args: UpdateKeyArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    if let Some(label) = args.label {
        body.insert("label".into(), json!(label));
    }
    if let Some(tools) = args.tools {
        body.insert("allowed_tools".into(), json!(tools));
    }
    if args.all_tools {
        body.insert("tool_scope".into(), json!("all_supported_tools"));
    }
    if let Some(cap) = args.daily_cap {
        body.insert("daily_cap_cents".into(), json!(super::cents("--daily-cap", &cap)?));
    }
    for (field, flag, cap) in [
        ("total_cap_cents", "--total-cap", args.total_cap),
        ("end_user_daily_cap_cents", "--end-user-daily-cap", args.end_user_daily_cap),
        ("end_user_total_cap_cents", "--end-user-total-cap", args.end_user_total_cap),
    ] {
        if let Some(cap) = cap {
            let cents = if cap == "none" { Value::Null } else { json!(super::cents(flag, &cap)?) };
            body.insert(field.into(), cents);
        }
    }
    if !args.cidrs.is_empty() || args.any_cidr {
        body.insert("allowed_cidrs".into(), json!(args.cidrs));
    }
    if let Some(at) = args.expires {
        body.insert("expires_at".into(), if at == "never" { Value::Null } else { json!(at) });
    }
    if let Some(read_only) = args.read_only {
        body.insert("read_only".into(), json!(read_only));
    }
    if let Some(rate) = args.rate_limit {
        body.insert("rate_limit_per_second".into(), json!(rate));
    }
    if let Some(idempotency) = args.idempotency {
        body.insert("idempotency".into(), json!(idempotency));
    }
    if let Some(percent) = args.cap_alert_percent {
        body.insert("cap_alert_percent".into(), json!(percent));
    }
    if let Some(rule) = args.end_user {
        body.insert("end_user".into(), json!(rule));
    }
    if body.is_empty() {
        bail!(
            "nothing to update: pass at least one of --label, --tools, --all-tools, --daily-cap, --total-cap, --cidr, --any-cidr, --expires, --read-only, --rate-limit, --idempotency, --cap-alert-percent, --end-user, --end-user-daily-cap, --end-user-total-cap"
        );
    }
    Ok(Value::Object(body))
}

fn list_path(args: &ListKeysArgs) -> String {
    let mut query = vec![];
    if let Some(limit) = args.limit {
        query.push(format!("limit={limit}"));
    }
    if let Some(id) = args.starting_after {
        query.push(format!("starting_after={id}"));
    }
    if let Some(id) = args.ending_before {
        query.push(format!("ending_before={id}"));
    }
    if query.is_empty() { "/v1/api/keys".into() } else { format!("/v1/api/keys?{}", query.join("&")) }
}

fn print_created(body: &Value) {
    println!("{}", field(body, "key"));
    eprintln!("{STORE_REMINDER}");
    println!(
        "id {}  label {}  prefix {}  environment {}",
        field(body, "id"),
        field(body, "label"),
        field(body, "key_prefix"),
        field(body, "environment")
    );
    print_secrets(body);
}

/// The key's secrets, newest first, with when each stops working (during a rotation's grace,
/// the old one's end is what its user needs to see).
fn print_secrets(key: &Value) {
    let Some(secrets) = key["secrets"].as_array().filter(|s| !s.is_empty()) else { return };
    let rows: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| {
            let ends = s["revoked_at"].as_str().or(s["expires_at"].as_str()).unwrap_or("-").to_owned();
            let used = s["last_used_at"]
                .as_str()
                .map_or("-".to_owned(), |at| format!("{at} from {}", field(s, "last_used_ip")));
            vec![field(s, "id"), field(s, "key_prefix"), field(s, "status"), ends, used]
        })
        .collect();
    println!();
    print_table(&["SECRET", "PREFIX", "STATUS", "ENDS", "LAST USED"], &rows);
}

fn print_key(key: &Value) {
    let rows = [
        ("id", field(key, "id")),
        ("label", field(key, "label")),
        ("status", field(key, "status")),
        ("prefix", field(key, "key_prefix")),
        ("environment", field(key, "environment")),
        ("tool scope", field(key, "tool_scope")),
        ("allowed tools", key["allowed_tools"].as_array().map(|t| join(t)).unwrap_or_default()),
        ("allowed cidrs", key["allowed_cidrs"].as_array().map(|c| join(c)).unwrap_or_default()),
        ("daily cap", dollars(key, "daily_cap_cents")),
        ("total cap", dollars(key, "total_cap_cents")),
        ("spent today", dollars(key, "spent_today_cents")),
        ("spent total", dollars(key, "spent_total_cents")),
        ("read only", field(key, "read_only")),
        ("rate limit", format!("{}/s", field(key, "rate_limit_per_second"))),
        ("idempotency", field(key, "idempotency")),
        ("cap alert", format!("{}%", field(key, "cap_alert_percent"))),
        ("end user", field(key, "end_user")),
        (
            "end user caps",
            format!(
                "{} a day, {} in total",
                dollars(key, "end_user_daily_cap_cents"),
                dollars(key, "end_user_total_cap_cents")
            ),
        ),
        ("expires", field(key, "expires_at")),
        ("created", field(key, "created_at")),
        ("last used", format!("{} from {}", field(key, "last_used_at"), field(key, "last_used_ip"))),
    ];
    for (name, value) in rows {
        println!("{name:<14} {value}");
    }
    print_secrets(key);
}

fn join(values: &[Value]) -> String {
    let parts: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
    if parts.is_empty() { "-".into() } else { parts.join(",") }
}

fn print_list(body: &Value) {
    let keys = body["keys"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                field(k, "label"),
                field(k, "id"),
                field(k, "key_prefix"),
                field(k, "status"),
                dollars(k, "daily_cap_cents"),
                dollars(k, "total_cap_cents"),
                format!("{}/{}", dollars(k, "spent_today_cents"), dollars(k, "spent_total_cents")),
                field(k, "last_used_at"),
            ]
        })
        .collect();
    print_table(
        &["LABEL", "ID", "PREFIX", "STATUS", "DAILY CAP", "TOTAL CAP", "SPENT TODAY/TOTAL", "LAST USED"],
        &rows,
    );
    if let Some(next) = body["next_cursor"].as_i64() {
        println!("more: visa-cli keys list --starting-after {next}");
    }
}

/// One line per secret: its prefix, a sparkline of requests per bucket over the whole range
/// (blank = no traffic), and the totals.
fn print_usage(body: &Value) {
    let minutes = match body["granularity"].as_str() {
        Some("minute") => 1,
        Some("day") => 1440,
        _ => 60,
    };
    let parse = |field: &str| {
        body[field]
            .as_str()
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    };
    let (Some(since), Some(until)) = (parse("since"), parse("until")) else {
        return println!("no usage");
    };
    let bucket_of = |at: time::OffsetDateTime| at.unix_timestamp().div_euclid(60 * minutes);
    let (first, last) = (bucket_of(since), bucket_of(until));
    println!(
        "usage of key {} from {} to {} (one mark per {}):",
        field(body, "key_id"),
        field(body, "since"),
        field(body, "until"),
        field(body, "granularity")
    );
    for secret in body["secrets"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let mut counts = vec![0u64; (last - first + 1).max(1) as usize];
        for bucket in secret["buckets"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let start = bucket["start"]
                .as_str()
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            if let Some(index) = start.map(|s| bucket_of(s) - first).filter(|i| (0..counts.len() as i64).contains(i)) {
                counts[index as usize] += bucket["requests"].as_u64().unwrap_or(0);
            }
        }
        let totals = &secret["totals"];
        println!(
            "  {:<24} |{}| {} requests, {} ok, errors {}, charged {}",
            field(secret, "key_prefix"),
            sparkline(&counts),
            field(totals, "requests"),
            field(totals, "successes"),
            totals["errors"],
            totals["charged_micros"]
                .as_str()
                .and_then(|m| m.parse().ok())
                .map(|m| visa_core::money::format_cents_as_dollars(visa_core::money::Micros(m).cents_ceil()))
                .unwrap_or_default()
        );
    }
}

/// Eight levels of bar, scaled to the largest count; zero is blank.
fn sparkline(counts: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    counts.iter().map(|&c| if c == 0 { ' ' } else { BARS[((c * 8 - 1) / max).min(7) as usize] }).collect()
}

#[cfg(test)]
mod tests {
    use super::sparkline;

    #[test]
    fn sparkline_scales_to_the_peak() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[3, 3]), "██");
    }
}
