//! `visa-cli keys ...`: the seed's key lifecycle over the HTTP API.

use crate::cli::{CreateKeyArgs, KeysCommand, ListKeysArgs, UpdateKeyArgs};
use crate::output::{dollars, field, print_table};
use crate::settings;
use anyhow::bail;
use reqwest::Method;
use serde_json::{Map, Value, json};

const STORE_REMINDER: &str = "Store this key now (e.g. in your secret manager): it will not be shown again.";

pub async fn run(command: KeysCommand, json: bool) -> anyhow::Result<()> {
    let client = settings::session_client()?;
    match command {
        KeysCommand::Create(args) => {
            let body = create_body(args)?;
            let answer = client.send(Method::POST, "/v1/api/keys", Some(&body)).await?;
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
            super::show(&answer, json, print_key);
        }
        KeysCommand::Rotate { id, grace } => {
            let body = json!({ "grace_period_seconds": grace.unwrap_or(0) });
            let answer = client.send(Method::POST, &format!("/v1/api/keys/{id}/rotate"), Some(&body)).await?;
            super::show(&answer, json, print_created);
        }
        KeysCommand::Revoke { id } => {
            let answer = client.send(Method::DELETE, &format!("/v1/api/keys/{id}"), None).await?;
            super::show(&answer, json, |body| println!("Revoked key {}.", field(body, "revoked")));
        }
    }
    Ok(())
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
    if let Some(cap) = args.total_cap {
        let cents = if cap == "none" { Value::Null } else { json!(super::cents("--total-cap", &cap)?) };
        body.insert("total_cap_cents".into(), cents);
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
    if body.is_empty() {
        bail!(
            "nothing to update: pass at least one of --label, --tools, --all-tools, --daily-cap, --total-cap, --cidr, --any-cidr, --expires, --read-only, --rate-limit"
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
        ("expires", field(key, "expires_at")),
        ("created", field(key, "created_at")),
        ("last used", format!("{} from {}", field(key, "last_used_at"), field(key, "last_used_ip"))),
    ];
    for (name, value) in rows {
        println!("{name:<14} {value}");
    }
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
