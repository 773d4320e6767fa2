//! `visa-cli operator accounts create|approve|credit`: the operator's bootstrap commands.

use crate::cli::{AccountsCommand, OperatorCommand};
use crate::output::{dollars, field};
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn run(command: OperatorCommand, json: bool) -> anyhow::Result<()> {
    let OperatorCommand::Accounts(command) = command;
    let client = settings::operator_client()?;
    // An account created with a password: its owner signs in (`visa-cli login`); the owner
    // session the server also answers with is not printed.
    let mut show_session = true;
    let answer = match command {
        AccountsCommand::Create { login, approve, credit, password_stdin } => {
            show_session = !password_stdin;
            let mut body = json!({ "login": login, "approved": approve });
            if let Some(credit) = credit {
                body["credit_cents"] = json!(super::cents("--credit", &credit)?);
            }
            if password_stdin {
                body["password"] = json!(super::read_new_password(true)?);
            }
            client.send(Method::POST, "/v1/operator/accounts", Some(&body)).await.map_err(settings::operator_failure)?
        }
        AccountsCommand::Approve { login, revoke } => {
            let body = json!({ "approved": !revoke });
            let path = format!("/v1/operator/accounts/{login}");
            client.send(Method::PATCH, &path, Some(&body)).await.map_err(settings::operator_failure)?
        }
        AccountsCommand::Credit { login, amount } => {
            let body = json!({ "amount_cents": super::cents("amount", &amount)? });
            let path = format!("/v1/operator/accounts/{login}/credits");
            client.send_once(&path, &body, None).await.map_err(settings::operator_failure)?
        }
    };
    super::show(&answer, json, |body| print_account(body, show_session));
    Ok(())
}

fn print_account(body: &Value, show_session: bool) {
    let account = &body["account"];
    println!(
        "account {} (id {}): approved {}, balance {}",
        field(account, "login"),
        field(account, "id"),
        field(account, "approved"),
        dollars(account, "balance_cents")
    );
    match body["session_token"].as_str() {
        Some(token) if show_session => println!(
            "owner session token, valid 30 days (shown once; export it as VISA_SESSION_TOKEN, or sign in with \
             `visa-cli login` once the account has a password): {token}"
        ),
        Some(_) => println!("the owner signs in with: visa-cli login {}", field(account, "login")),
        None => {}
    }
}
