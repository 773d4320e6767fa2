//! `visa-cli members list|add|role|remove|accept`.

use crate::cli::MembersCommand;
use crate::output::{field, print_table};
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn run(command: MembersCommand, json: bool) -> anyhow::Result<()> {
    let client = settings::session_client;
    match command {
        MembersCommand::Accept { token, password_stdin } => accept(&token, password_stdin, json).await?,
        MembersCommand::List => {
            let answer = client()?.send(Method::GET, "/v1/api/members", None).await?;
            super::show(&answer, json, print_list);
        }
        MembersCommand::Add { login, role } => {
            let body = json!({ "login": login, "role": role });
            let answer = client()?.send(Method::POST, "/v1/api/members", Some(&body)).await?;
            super::show(&answer, json, |body| {
                println!("{}", field(body, "invite_token"));
                eprintln!(
                    "Invited {} as {}. Hand them this invitation token (shown once, valid until {}); \
                     they run: visa-cli members accept <token>",
                    field(&body["member"], "login"),
                    field(&body["member"], "role"),
                    field(&body["member"], "invite_expires_at"),
                );
            });
        }
        MembersCommand::Role { id, role } => {
            let path = format!("/v1/api/members/{id}");
            let answer = client()?.send(Method::PATCH, &path, Some(&json!({ "role": role }))).await?;
            super::show(&answer, json, |body| {
                println!("{} is now {}.", field(&body["member"], "login"), field(&body["member"], "role"))
            });
        }
        MembersCommand::Remove { id } => {
            let answer = client()?.send(Method::DELETE, &format!("/v1/api/members/{id}"), None).await?;
            super::show(&answer, json, |body| println!("Removed member {}.", field(body, "removed")));
        }
    }
    Ok(())
}

async fn accept(token: &str, password_stdin: bool, json: bool) -> anyhow::Result<()> {
    let client = settings::anonymous_client()?;
    let password = super::read_new_password(password_stdin)?;
    let body = json!({ "invite_token": token.trim(), "password": password });
    let answer = client.send(Method::POST, "/v1/api/members/accept", Some(&body)).await?;
    super::login::keep_session(&answer.body, json)
}

fn print_list(body: &Value) {
    let rows: Vec<Vec<String>> = body["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| vec![field(m, "login"), field(m, "id"), field(m, "role"), field(m, "status"), field(m, "created_at")])
        .collect();
    print_table(&["LOGIN", "ID", "ROLE", "STATUS", "CREATED"], &rows);
}
