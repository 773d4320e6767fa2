//! Where a client command finds the server and its credentials:
//! `VISA_API_URL` (default `http://127.0.0.1:8080`), `VISA_SESSION_TOKEN` (else the token
//! `visa-cli login` stored under the user's config dir, mode 0600) and, for operator
//! commands, `VISA_OPERATOR_TOKEN` (else `<VISA_DATA_DIR or ./visa-data>/operator-token`).
//! No credential goes over plain `http://` to another machine unless `VISA_ALLOW_PLAIN_HTTP=1`.

use anyhow::{Context, anyhow};
use std::path::PathBuf;
use visa_client::Client;

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

pub fn api_url() -> String {
    std::env::var("VISA_API_URL").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| DEFAULT_API_URL.to_owned())
}

/// `$VISA_CONFIG_DIR`, else `<user config dir>/visa-cli`.
fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("VISA_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir().map(|d| d.join("visa-cli")).ok_or_else(|| anyhow!("no config directory; set VISA_CONFIG_DIR"))
}

fn session_file() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("session"))
}

/// Forgets the stored session; whether there was one.
pub fn forget_session_token() -> anyhow::Result<bool> {
    let path = session_file()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow!("cannot remove {}: {e}", path.display())),
    }
}

/// Whether a session is stored (so a new one would replace it).
pub fn has_stored_session() -> bool {
    session_file().is_ok_and(|p| p.exists())
}

pub fn store_session_token(token: &str) -> anyhow::Result<PathBuf> {
    let path = session_file()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    visa_server::write_private_file(&path, token)?;
    Ok(path)
}

pub fn session_token_from_env() -> bool {
    std::env::var("VISA_SESSION_TOKEN").is_ok_and(|t| !t.is_empty())
}

fn session_token() -> anyhow::Result<String> {
    if let Some(token) = std::env::var("VISA_SESSION_TOKEN").ok().filter(|t| !t.is_empty()) {
        return Ok(token);
    }
    let path = session_file()?;
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_owned())
        .map_err(|_| anyhow!("not signed in: run `visa-cli login LOGIN` or set VISA_SESSION_TOKEN"))
}

/// The operator token: `VISA_OPERATOR_TOKEN`, else the file the server generated in its data
/// dir (`VISA_DATA_DIR`, default `./visa-data`).
fn operator_token() -> anyhow::Result<String> {
    match operator_token_source() {
        OperatorTokenSource::Environment(token) => Ok(token),
        OperatorTokenSource::File(path) => std::fs::read_to_string(&path).map(|t| t.trim().to_owned()).map_err(|_| {
            anyhow!("no operator token: set VISA_OPERATOR_TOKEN or VISA_DATA_DIR (looked in {})", path.display())
        }),
    }
}

enum OperatorTokenSource {
    Environment(String),
    File(PathBuf),
}

fn operator_token_source() -> OperatorTokenSource {
    if let Some(token) = std::env::var("VISA_OPERATOR_TOKEN").ok().filter(|t| !t.is_empty()) {
        return OperatorTokenSource::Environment(token);
    }
    let dir = std::env::var_os("VISA_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("./visa-data"));
    OperatorTokenSource::File(dir.join("operator-token"))
}

/// An operator request's failure; a refused token says where it came from (the environment
/// or which file), the usual cause being a token of another server or data dir.
pub fn operator_failure(error: visa_client::ClientError) -> anyhow::Error {
    match &error {
        visa_client::ClientError::Api(api) if api.code == "AUTH_INVALID" => {
            let source = match operator_token_source() {
                OperatorTokenSource::Environment(_) => "VISA_OPERATOR_TOKEN".to_owned(),
                OperatorTokenSource::File(path) => format!("the file {}", path.display()),
            };
            anyhow!("{error} (the operator token came from {source}: is it this server's?)")
        }
        _ => error.into(),
    }
}

/// A client sending `token`: never over plain HTTP to another machine unless
/// `VISA_ALLOW_PLAIN_HTTP=1` says that network is trusted.
fn client(token: Option<String>) -> anyhow::Result<Client> {
    let url = api_url();
    if std::env::var("VISA_ALLOW_PLAIN_HTTP").is_ok_and(|v| v == "1") {
        return Ok(Client::new_plain_http(&url, token)?);
    }
    Ok(Client::new(&url, token)?)
}

/// A client that reads with a tool key from `VISA_API_KEY` when set, else with the session.
pub fn reader_client() -> anyhow::Result<Client> {
    match std::env::var("VISA_API_KEY").ok().filter(|k| !k.is_empty()) {
        Some(key) => client(Some(key)),
        None => session_client(),
    }
}

pub fn session_client() -> anyhow::Result<Client> {
    client(Some(session_token()?))
}

pub fn operator_client() -> anyhow::Result<Client> {
    client(Some(operator_token()?))
}

pub fn anonymous_client() -> anyhow::Result<Client> {
    client(None)
}
