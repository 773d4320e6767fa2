//! `visa-cli login LOGIN`: trade a password for a session token and keep it (mode 0600);
//! `whoami` says whose it is; `logout` ends it on the server and forgets it.

use crate::cli::LoginArgs;
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn run(args: LoginArgs, json: bool) -> anyhow::Result<()> {
    // The client first: it refuses a URL the password must not travel to, before asking for it.
    let client = settings::anonymous_client()?;
    let password = super::read_password(args.password_stdin)?;
    let body = json!({ "login": args.login, "password": password });
    let answer = client.send(Method::POST, "/v1/api/sessions", Some(&body)).await?;
    keep_session(&answer.body, json)
}

/// Stores the session token of a sign-in answer and says so (never printing the token), and
/// that it replaced a stored session, so no later command runs as someone else unnoticed.
pub fn keep_session(answer: &Value, json: bool) -> anyhow::Result<()> {
    let token = answer["session_token"].as_str().ok_or_else(|| anyhow::anyhow!("the server sent no session token"))?;
    let login = answer["login"].as_str().unwrap_or("?");
    let replaced = settings::has_stored_session();
    let path = settings::store_session_token(token)?;
    if json {
        let stored = json!({ "success": true, "login": login, "stored_at": path.display().to_string(),
            "expires_at": answer["expires_at"], "replaced_previous": replaced });
        println!("{stored}");
    } else {
        println!("Signed in as {login}. Session stored in {}.", path.display());
        if replaced {
            eprintln!("note: this replaced the session stored there before (`visa-cli whoami` says who you are now)");
        }
    }
    if settings::session_token_from_env() {
        eprintln!("note: VISA_SESSION_TOKEN is set and takes precedence over the stored session");
    }
    Ok(())
}

pub async fn whoami(json: bool) -> anyhow::Result<()> {
    let answer = settings::session_client()?.send(Method::GET, "/v1/api/sessions/current", None).await?;
    super::show(&answer, json, |body| {
        let field = |name: &str| crate::output::field(body, name);
        let via = if settings::session_token_from_env() { "VISA_SESSION_TOKEN" } else { "the stored session" };
        match field("credential").as_str() {
            "admin_key" => {
                println!("admin key '{}' of account {} (role admin), via {via}", field("actor"), field("account"))
            }
            _ => println!("{} (role {}) of account {}, via {via}", field("actor"), field("role"), field("account")),
        }
    });
    Ok(())
}

pub async fn logout(json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !settings::session_token_from_env(),
        "VISA_SESSION_TOKEN is set: unset it (logout ends only the session visa-cli stored)"
    );
    // The server ends the session first; a session it no longer knows is simply forgotten.
    let ended = match settings::session_client() {
        Ok(client) => match client.send(Method::DELETE, "/v1/api/sessions/current", None).await {
            Ok(_) => true,
            Err(visa_client::ClientError::Api(e)) if e.code == "AUTH_INVALID" => false,
            Err(e) => return Err(e.into()),
        },
        Err(_) => false,
    };
    let forgotten = settings::forget_session_token()?;
    if json {
        println!("{}", json!({ "success": true, "ended": ended, "forgotten": forgotten }));
    } else if forgotten || ended {
        println!("Signed out.");
    } else {
        println!("Not signed in.");
    }
    Ok(())
}
