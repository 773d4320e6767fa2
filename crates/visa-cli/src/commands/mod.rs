//! One module per command group; `dispatch` routes a parsed command line to it.

mod admin_keys;
mod audit;
mod billing;
mod keys;
mod ledger;
mod login;
mod members;
mod operator;
mod serve;
mod sessions;
mod spend;
mod tools;
mod webhooks;

use crate::cli::{Cli, Command};
use crate::output::print_json;
use visa_client::Answer;

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Serve(_) if json => {
            anyhow::bail!("--json does not apply to serve: its log goes to stderr (VISA_LOG sets the level)")
        }
        Command::Serve(args) => serve::run(args).await,
        Command::Login(args) => login::run(args, json).await,
        Command::Whoami => login::whoami(json).await,
        Command::Logout => login::logout(json).await,
        Command::Sessions(command) => sessions::run(command, json).await,
        Command::Password { password_stdin } => sessions::change_password(password_stdin, json).await,
        Command::Keys(command) => keys::run(command, json).await,
        Command::AdminKeys(command) => admin_keys::run(command, json).await,
        Command::Members(command) => members::run(command, json).await,
        Command::Webhooks(command) => webhooks::run(command, json).await,
        Command::Audit(args) => audit::run(args, json).await,
        Command::Tools => tools::run(json).await,
        Command::Operator(command) => operator::run(command, json).await,
        Command::Balance => billing::balance(json).await,
        Command::Spend(args) => spend::run(args, json).await,
        Command::Budget { end_user } => billing::budget(end_user, json).await,
        Command::Executions(command) => billing::executions(command, json).await,
        Command::Ledger(command) => ledger::run(command, json).await,
        Command::Backup { database, file } => ledger::backup(&database, &file, json),
    }
}

/// Prints the raw body with `--json`, else the readable view.
fn show(answer: &Answer, json: bool, readable: impl FnOnce(&serde_json::Value)) {
    if json {
        print_json(&answer.body);
    } else {
        readable(&answer.body);
    }
}

/// `path` with the query of `pairs` that have a value, each encoded for a URL.
pub(super) fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = reqwest::Url::parse("http://server").expect("a constant URL");
    url.set_path(path);
    for (name, value) in pairs {
        if let Some(value) = value {
            url.query_pairs_mut().append_pair(name, value);
        }
    }
    match url.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

/// Dollars typed by a person → cents, with a message naming the flag.
fn cents(flag: &str, dollars: &str) -> anyhow::Result<i64> {
    visa_core::money::parse_dollars_to_cents(dollars).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// Reads one line (a password) from standard input, or prompts on the terminal.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    prompt_password(from_stdin, "Password: ")
}

/// One password: the next line of standard input, or asked for with `prompt`.
/// Reads a new password (one line of standard input, or asked twice on the terminal), checked
/// against the server's rule before anything is sent.
fn read_new_password(from_stdin: bool) -> anyhow::Result<String> {
    let rule = visa_core::password::rule();
    let password = prompt_password(from_stdin, &format!("New password ({rule}): "))?;
    visa_core::password::check(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !from_stdin {
        let again = prompt_password(false, "Repeat the new password: ")?;
        anyhow::ensure!(again == password, "the two passwords differ; nothing was changed");
    }
    Ok(password)
}

fn prompt_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)?
    } else {
        anyhow::bail!("no terminal to ask for the password: pipe it in with --password-stdin")
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok(password)
}
