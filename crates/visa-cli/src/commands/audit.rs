//! `visa-cli audit [--action A] [--target T] [--since S] [--follow]`: the account's audit log,
//! oldest of the shown entries first (like a log file). `--follow` keeps polling once a second
//! for entries newer than the last one printed, `tail -f` style; with `--json` it prints one
//! JSON object per line.

use crate::cli::AuditArgs;
use crate::output::{field, print_table};
use crate::settings;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use visa_client::Client;

const POLL_EVERY: Duration = Duration::from_secs(1);

pub async fn run(args: AuditArgs, json: bool) -> anyhow::Result<()> {
    let client = settings::session_client()?;
    let first = client.send(Method::GET, &path(&args, &[("limit", args.limit.to_string())]), None).await?;
    let mut newest = entries(&first.body).first().and_then(|e| e["id"].as_i64());
    if !args.follow {
        super::show(&first, json, |body| print_entries(&entries(body), json, true));
        return Ok(());
    }
    print_entries(&entries(&first.body), json, true);
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        newest = print_newer(&client, &args, newest, json).await?;
    }
}

/// Prints every entry newer than `after`, oldest first; returns the newest id printed.
async fn print_newer(client: &Client, args: &AuditArgs, after: Option<i64>, json: bool) -> anyhow::Result<Option<i64>> {
    let mut cursor = after;
    loop {
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(id) = cursor {
            query.push(("ending_before", id.to_string()));
        }
        let page = client.send(Method::GET, &path(args, &query), None).await?;
        let found = entries(&page.body);
        if found.is_empty() {
            return Ok(cursor);
        }
        print_entries(&found, json, false);
        cursor = found.first().and_then(|e| e["id"].as_i64());
        if page.body["has_more"] != Value::Bool(true) || after.is_none() {
            return Ok(cursor);
        }
    }
}

/// `/v1/api/audit` with the filters and `extra` as a properly encoded query string.
fn path(args: &AuditArgs, extra: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("http://audit.invalid/v1/api/audit").expect("a valid URL");
    {
        let mut query = url.query_pairs_mut();
        let filters = [("action", &args.action), ("target", &args.target), ("since", &args.since)];
        for (name, value) in filters {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        for (name, value) in extra {
            query.append_pair(name, value);
        }
    }
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

fn entries(body: &Value) -> Vec<Value> {
    body["entries"].as_array().cloned().unwrap_or_default()
}

/// Prints entries (given newest first) oldest first, as a table or JSON lines.
fn print_entries(newest_first: &[Value], json: bool, with_header: bool) {
    let oldest_first = newest_first.iter().rev();
    if json {
        oldest_first.for_each(|e| println!("{e}"));
        return;
    }
    let rows: Vec<Vec<String>> = oldest_first
        .map(|e| {
            let actor = &e["actor"];
            let who = format!("{}:{}", field(actor, "type"), field(actor, "name"));
            vec![
                field(e, "created_at"),
                who,
                field(e, "action"),
                field(e, "target"),
                changes(&e["changes"]),
                field(e, "ip"),
            ]
        })
        .collect();
    let headers = ["TIME", "ACTOR", "ACTION", "TARGET", "CHANGES", "IP"];
    if with_header {
        print_table(&headers, &rows);
    } else {
        rows.iter().for_each(|row| println!("{}", row.join("  ")));
    }
}

/// `field: before → after`, comma-separated; long values are shortened.
fn changes(changes: &Value) -> String {
    let short = |v: &Value| {
        let text = v.to_string();
        if text.chars().count() > 40 { format!("{}…", text.chars().take(39).collect::<String>()) } else { text }
    };
    changes
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(name, c)| format!("{name}: {} → {}", short(&c["before"]), short(&c["after"])))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
