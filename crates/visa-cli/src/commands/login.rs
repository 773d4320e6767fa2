//! `visa-cli login LOGIN`: trade a password for a session token and keep it (mode 0600).

use crate::cli::LoginArgs;
use crate::settings;
use reqwest::Method;
use serde_json::json;

pub async fn run(args: LoginArgs, json: bool) -> anyhow::Result<()> {
    let password = super::read_password(args.password_stdin)?;
    let client = settings::anonymous_client()?;
    let body = json!({ "login": args.login, "password": password });
    let answer = client.send(Method::POST, "/v1/api/sessions", Some(&body)).await?;
    let token =
        answer.body["session_token"].as_str().ok_or_else(|| anyhow::anyhow!("the server sent no session token"))?;
    let path = settings::store_session_token(token)?;
    if json {
        println!(
            "{}",
            json!({ "success": true, "stored_at": path.display().to_string(), "expires_at": answer.body["expires_at"] })
        );
    } else {
        println!("Signed in as {}. Session stored in {}.", args.login, path.display());
    }
    Ok(())
}
