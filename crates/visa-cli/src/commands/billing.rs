//! `visa-cli balance`, `visa-cli budget` (a key's own) and `visa-cli executions list|get|reconcile`.

use crate::cli::ExecutionsCommand;
use crate::output::{field, print_table};
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};
use visa_core::money::{Micros, format_cents_as_dollars};

/// A decimal-string micros field as dollars, rounded up to the cent.
fn micros_as_dollars(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .and_then(|m| m.parse().ok())
        .map(|m| format_cents_as_dollars(Micros(m).cents_ceil()))
        .unwrap_or_else(|| "-".into())
}

pub async fn balance(json: bool) -> anyhow::Result<()> {
    let answer = settings::reader_client()?.send(Method::GET, "/v1/api/balance", None).await?;
    super::show(&answer, json, |body| {
        println!(
            "balance {}  available {}  held {}",
            micros_as_dollars(body, "balance_micros"),
            micros_as_dollars(body, "available_micros"),
            micros_as_dollars(body, "held_micros")
        );
    });
    Ok(())
}

/// `GET /v1/api/key`: what the key in `VISA_API_KEY` may still spend, for one of its end users
/// if one is named.
pub async fn budget(end_user: Option<String>, json: bool) -> anyhow::Result<()> {
    if std::env::var("VISA_API_KEY").ok().filter(|k| !k.is_empty()).is_none() {
        anyhow::bail!("visa-cli budget reads a key's own budget: set VISA_API_KEY to the key");
    }
    let path = super::with_query("/v1/api/key", &[("end_user", end_user.as_deref())]);
    let answer = settings::reader_client()?.send(Method::GET, &path, None).await?;
    super::show(&answer, json, |body| {
        let resets = body["resets_at"].as_str().map(|at| format!(", resets {at}")).unwrap_or_default();
        println!(
            "key {} ({})  spendable {}  limited by {}{resets}",
            field(body, "key_id"),
            field(body, "label"),
            micros_as_dollars(body, "spendable_micros"),
            field(body, "limited_by")
        );
        println!(
            "spent today {} (held {})  in total {}",
            micros_as_dollars(body, "spent_today_micros"),
            micros_as_dollars(body, "held_today_micros"),
            micros_as_dollars(body, "spent_total_micros")
        );
        let user = &body["end_user"];
        if user.is_object() {
            let cap = |name: &str| user[name].as_i64().map_or("none".to_owned(), format_cents_as_dollars);
            println!(
                "end user {}: spent today {} (held {})  in total {}  caps {} a day, {} in total",
                field(user, "id"),
                micros_as_dollars(user, "spent_today_micros"),
                micros_as_dollars(user, "held_today_micros"),
                micros_as_dollars(user, "spent_total_micros"),
                cap("daily_cap_cents"),
                cap("total_cap_cents")
            );
        }
    });
    Ok(())
}

pub async fn executions(command: ExecutionsCommand, json: bool) -> anyhow::Result<()> {
    match command {
        ExecutionsCommand::List { state, limit, starting_after, operator } => {
            let mut query = vec![];
            if let Some(state) = state {
                query.push(format!("state={state}"));
            }
            if let Some(limit) = limit {
                query.push(format!("limit={limit}"));
            }
            if let Some(cursor) = starting_after {
                query.push(format!("starting_after={cursor}"));
            }
            let (client, base) = if operator {
                (settings::operator_client()?, "/v1/operator/executions")
            } else {
                (settings::reader_client()?, "/v1/api/executions")
            };
            let path = if query.is_empty() { base.to_owned() } else { format!("{base}?{}", query.join("&")) };
            let sent = client.send(Method::GET, &path, None).await;
            let answer = if operator { sent.map_err(settings::operator_failure)? } else { sent? };
            super::show(&answer, json, print_list);
        }
        ExecutionsCommand::Export { from, to } => {
            let path =
                super::with_query("/v1/api/spend/export.csv", &[("from", from.as_deref()), ("to", to.as_deref())]);
            let stdout = std::io::stdout();
            settings::reader_client()?.download(&path, &mut stdout.lock()).await?;
        }
        ExecutionsCommand::Get { id } => {
            let answer =
                settings::reader_client()?.send(Method::GET, &format!("/v1/api/executions/{id}"), None).await?;
            super::show(&answer, json, print_one);
        }
        ExecutionsCommand::Reconcile { id, capture, capture_micros, void } => {
            let body = match (capture, capture_micros) {
                (Some(dollars), _) => json!({ "capture_cents": super::cents("--capture", &dollars)? }),
                (None, Some(micros)) => json!({ "capture_micros": micros }),
                (None, None) => json!({ "void": void }),
            };
            let path = format!("/v1/operator/executions/{id}/reconcile");
            let answer =
                settings::operator_client()?.send_once(&path, &body, None).await.map_err(settings::operator_failure)?;
            super::show(&answer, json, print_one);
        }
    }
    Ok(())
}

fn print_list(body: &Value) {
    let rows: Vec<Vec<String>> = body["executions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                field(e, "id"),
                field(e, "seq"),
                field(e, "tool"),
                field(e, "key_id"),
                field(e, "state"),
                micros_as_dollars(e, "charged_micros"),
                field(e, "created_at"),
            ]
        })
        .collect();
    print_table(&["ID", "SEQ", "TOOL", "KEY", "STATE", "CHARGED", "CREATED"], &rows);
    if let Some(next) = body["next_cursor"].as_i64() {
        println!("more: --starting-after {next}");
    }
}

fn print_one(e: &Value) {
    println!(
        "execution {} ({}): {} on key {}, held {}, charged {}, created {}, finished {}",
        field(e, "id"),
        field(e, "tool"),
        field(e, "state"),
        field(e, "key_id"),
        micros_as_dollars(e, "held_micros"),
        micros_as_dollars(e, "charged_micros"),
        field(e, "created_at"),
        field(e, "finished_at")
    );
}
