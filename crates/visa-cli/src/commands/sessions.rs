//! `visa-cli sessions list|revoke|revoke-all` and `visa-cli password`: see where you are
//! signed in, end what you do not recognise, and change a password (which ends every other
//! session of yours).

use crate::cli::SessionsCommand;
use crate::output::{field, print_table};
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn run(command: SessionsCommand, json: bool) -> anyhow::Result<()> {
    let client = settings::session_client()?;
    match command {
        SessionsCommand::List { member } => {
            let path = member.map_or("/v1/api/sessions".to_owned(), |id| format!("/v1/api/members/{id}/sessions"));
            let answer = client.send(Method::GET, &path, None).await?;
            super::show(&answer, json, print_list);
        }
        SessionsCommand::Revoke { id } => {
            let answer = client.send(Method::DELETE, &format!("/v1/api/sessions/{id}"), None).await?;
            super::show(&answer, json, |_| println!("Ended session {id}."));
        }
        SessionsCommand::RevokeAll { member } => {
            let answer = client.send(Method::DELETE, &format!("/v1/api/members/{member}/sessions"), None).await?;
            super::show(&answer, json, |body| println!("Ended {} of member {member}.", sessions(&body["ended"])));
        }
    }
    Ok(())
}

pub async fn change_password(from_stdin: bool, json: bool) -> anyhow::Result<()> {
    let client = settings::session_client()?;
    let current = super::prompt_password(from_stdin, "Current password: ")?;
    let new = super::read_new_password(from_stdin)?;
    let body = json!({ "current_password": current, "new_password": new });
    let answer = client.send(Method::POST, "/v1/api/sessions/current/password", Some(&body)).await?;
    super::show(&answer, json, |body| {
        println!(
            "Password changed for {}; {} ended.",
            field(body, "login"),
            sessions(&body["other_sessions_ended"]).replacen(' ', " other ", 1)
        )
    });
    Ok(())
}

fn print_list(body: &Value) {
    let rows: Vec<Vec<String>> = body["sessions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let id = if s["current"] == true { format!("{} (this one)", field(s, "id")) } else { field(s, "id") };
            vec![id, field(s, "created_at"), field(s, "expires_at"), field(s, "ip"), field(s, "user_agent")]
        })
        .collect();
    print_table(&["ID", "CREATED", "EXPIRES", "IP", "USER AGENT"], &rows);
}

/// `1 session`, `3 sessions`.
fn sessions(count: &serde_json::Value) -> String {
    match count.as_u64() {
        Some(1) => "1 session".to_owned(),
        Some(n) => format!("{n} sessions"),
        None => "the sessions".to_owned(),
    }
}
