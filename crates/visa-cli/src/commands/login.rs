//! `visa-cli login LOGIN`: trade a password for a session token and keep it (mode 0600).

use crate::cli::LoginArgs;
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn run(args: LoginArgs, json: bool) -> anyhow::Result<()> {
    let password = super::read_password(args.password_stdin)?;
    let client = settings::anonymous_client()?;
    let body = json!({ "login": args.login, "password": password });
    let answer = client.send(Method::POST, "/v1/api/sessions", Some(&body)).await?;
    keep_session(&answer.body, Some(&args.login), json)
}

/// Stores the session token of a sign-in answer and says so (never printing the token).
pub fn keep_session(answer: &Value, login: Option<&str>, json: bool) -> anyhow::Result<()> {
    let token = answer["session_token"].as_str().ok_or_else(|| anyhow::anyhow!("the server sent no session token"))?;
    let path = settings::store_session_token(token)?;
    if json {
        println!(
            "{}",
            json!({ "success": true, "stored_at": path.display().to_string(), "expires_at": answer["expires_at"] })
        );
    } else {
        let who = login.map(|l| format!(" as {l}")).unwrap_or_default();
        println!("Signed in{who}. Session stored in {}.", path.display());
    }
    Ok(())
}
