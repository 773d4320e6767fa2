//! `visa-cli operator accounts create|approve|credit`: the operator's bootstrap commands.

use crate::cli::{AccountsCommand, OperatorCommand};
use crate::output::{dollars, field};
use crate::settings;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn run(command: OperatorCommand, json: bool) -> anyhow::Result<()> {
    let OperatorCommand::Accounts(command) = command;
    let client = settings::operator_client()?;
    let answer = match command {
        AccountsCommand::Create { login, approve, credit, password_stdin } => {
            let mut body = json!({ "login": login, "approved": approve });
            if let Some(credit) = credit {
                body["credit_cents"] = json!(super::cents("--credit", &credit)?);
            }
            if password_stdin {
                body["password"] = json!(super::read_password(true)?);
            }
            client.send(Method::POST, "/v1/operator/accounts", Some(&body)).await?
        }
        AccountsCommand::Approve { login, revoke } => {
            let body = json!({ "approved": !revoke });
            client.send(Method::PATCH, &format!("/v1/operator/accounts/{login}"), Some(&body)).await?
        }
        AccountsCommand::Credit { login, amount } => {
            let body = json!({ "amount_cents": super::cents("amount", &amount)? });
            client.send_once(&format!("/v1/operator/accounts/{login}/credits"), &body, None).await?
        }
    };
    super::show(&answer, json, print_account);
    Ok(())
}

fn print_account(body: &Value) {
    let account = &body["account"];
    println!(
        "account {} (id {}): approved {}, balance {}",
        field(account, "login"),
        field(account, "id"),
        field(account, "approved"),
        dollars(account, "balance_cents")
    );
    if let Some(token) = body["session_token"].as_str() {
        println!("session token (shown once; export it as VISA_SESSION_TOKEN): {token}");
    }
}
