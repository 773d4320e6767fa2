//! `visa-cli webhooks create|list|get|update|delete|rotate-secret|deliveries|replay|test`.

use crate::cli::WebhooksCommand;
use crate::output::{field, print_table};
use crate::settings;
use reqwest::Method;
use serde_json::{Map, Value, json};

pub async fn run(command: WebhooksCommand, json: bool) -> anyhow::Result<()> {
    let client = settings::session_client()?;
    let path = |id: i64, rest: &str| format!("/v1/api/webhooks/{id}{rest}");
    match command {
        WebhooksCommand::Create { url, events, description } => {
            let events = if events.is_empty() { vec!["*".to_owned()] } else { events };
            let body = json!({ "url": url, "events": events, "description": description });
            let answer = client.send(Method::POST, "/v1/api/webhooks", Some(&body)).await?;
            super::show(&answer, json, |body| {
                println!("{}", field(body, "secret"));
                eprintln!(
                    "Endpoint {} created. Store its signing secret now: it will not be shown again. Verify \
                     deliveries with any Standard Webhooks library (docs/webhooks.md).",
                    field(body, "id")
                );
            });
        }
        WebhooksCommand::List => {
            let answer = client.send(Method::GET, "/v1/api/webhooks", None).await?;
            super::show(&answer, json, |body| print_endpoints(body["webhooks"].as_array().map(Vec::as_slice)));
        }
        WebhooksCommand::Get { id } => {
            let answer = client.send(Method::GET, &path(id, ""), None).await?;
            super::show(&answer, json, |body| print_endpoints(Some(std::slice::from_ref(body))));
        }
        WebhooksCommand::Update { id, url, events, description, enable, disable } => {
            let mut body = Map::new();
            if let Some(url) = url {
                body.insert("url".into(), json!(url));
            }
            if !events.is_empty() {
                body.insert("events".into(), json!(events));
            }
            if let Some(description) = description {
                body.insert("description".into(), json!(description));
            }
            if enable || disable {
                body.insert("enabled".into(), json!(enable));
            }
            anyhow::ensure!(
                !body.is_empty(),
                "nothing to change: give --url, --event, --description, --enable or --disable"
            );
            let answer = client.send(Method::PATCH, &path(id, ""), Some(&Value::Object(body))).await?;
            super::show(&answer, json, |body| print_endpoints(Some(std::slice::from_ref(body))));
        }
        WebhooksCommand::Delete { id } => {
            let answer = client.send(Method::DELETE, &path(id, ""), None).await?;
            super::show(&answer, json, |body| println!("Deleted endpoint {}.", field(body, "deleted")));
        }
        WebhooksCommand::RotateSecret { id } => {
            let answer = client.send(Method::POST, &path(id, "/rotate-secret"), Some(&json!({}))).await?;
            super::show(&answer, json, |body| {
                println!("{}", field(body, "secret"));
                eprintln!(
                    "Store the new secret now: it will not be shown again. The old one also signs deliveries until {}.",
                    field(body, "previous_secret_expires_at")
                );
            });
        }
        WebhooksCommand::Deliveries { id } => {
            let answer = client.send(Method::GET, &path(id, "/deliveries"), None).await?;
            super::show(&answer, json, print_deliveries);
        }
        WebhooksCommand::Replay { id, event_id, since } => {
            let body = match event_id {
                Some(event_id) => json!({ "event_id": event_id }),
                None => json!({ "since": since }),
            };
            let answer = client.send(Method::POST, &path(id, "/replay"), Some(&body)).await?;
            super::show(&answer, json, |body| println!("{} deliveries due again.", field(body, "replayed")));
        }
        WebhooksCommand::Test { id } => {
            let answer = client.send(Method::POST, &path(id, "/test"), Some(&json!({}))).await?;
            super::show(&answer, json, |body| println!("Sent webhook.test as {}.", field(body, "event_id")));
        }
    }
    Ok(())
}

fn print_endpoints(endpoints: Option<&[Value]>) {
    let rows: Vec<Vec<String>> = endpoints
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let events: Vec<&str> = e["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let state = match (e["enabled"].as_bool(), e["disabled_reason"].as_str()) {
                (Some(true), _) if e["failing_since"].is_string() => {
                    format!("failing since {}", field(e, "failing_since"))
                }
                (Some(true), _) => "enabled".to_owned(),
                (_, Some(reason)) => format!("disabled ({reason})"),
                _ => "disabled".to_owned(),
            };
            vec![field(e, "id"), field(e, "url"), events.join(","), state, field(e, "created_at")]
        })
        .collect();
    print_table(&["ID", "URL", "EVENTS", "STATE", "CREATED"], &rows);
}

fn print_deliveries(body: &Value) {
    let rows: Vec<Vec<String>> = body["deliveries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let outcome = d["status"].as_u64().map_or_else(|| field(d, "error"), |s| s.to_string());
            vec![
                field(d, "created_at"),
                field(d, "event_id"),
                field(d, "type"),
                field(d, "attempt"),
                outcome,
                field(d, "latency_ms"),
            ]
        })
        .collect();
    print_table(&["TIME", "EVENT", "TYPE", "ATTEMPT", "STATUS", "MS"], &rows);
}
