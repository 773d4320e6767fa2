//! `visa-cli admin-keys create|list|revoke`.

use crate::cli::AdminKeysCommand;
use crate::output::{field, print_table};
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn run(command: AdminKeysCommand, json: bool) -> anyhow::Result<()> {
    let client = settings::session_client()?;
    match command {
        AdminKeysCommand::Create { label } => {
            let answer = client.send(Method::POST, "/v1/api/admin-keys", Some(&json!({ "label": label }))).await?;
            super::show(&answer, json, |body| {
                println!("{}", field(body, "key"));
                eprintln!(
                    "Store this admin key now: it will not be shown again. It manages the account like a session \
                     (keys, members, billing, audit) but cannot execute tools or mint admin keys. Use it as \
                     `Authorization: Bearer <key>`, or with visa-cli as VISA_SESSION_TOKEN=<key>."
                );
            });
        }
        AdminKeysCommand::List => {
            let answer = client.send(Method::GET, "/v1/api/admin-keys", None).await?;
            super::show(&answer, json, print_list);
        }
        AdminKeysCommand::Revoke { id } => {
            let answer = client.send(Method::DELETE, &format!("/v1/api/admin-keys/{id}"), None).await?;
            super::show(&answer, json, |body| println!("Revoked admin key {}.", field(body, "revoked")));
        }
    }
    Ok(())
}

fn print_list(body: &Value) {
    let rows: Vec<Vec<String>> = body["admin_keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|k| {
            vec![field(k, "label"), field(k, "id"), field(k, "key_prefix"), field(k, "status"), field(k, "created_at")]
        })
        .collect();
    print_table(&["LABEL", "ID", "PREFIX", "STATUS", "CREATED"], &rows);
}
