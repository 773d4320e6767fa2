//! The `visa-cli` commands. `cli` declares them (clap), `commands` carries them out:
//! `serve` runs the server library; every other command is a client of the HTTP API
//! through `visa_client`, printing a readable view or, with `--json`, the raw response.

pub mod cli;
pub mod commands;
pub mod config_file;
pub mod output;
pub mod settings;

pub use cli::{Cli, Command};

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    commands::dispatch(cli).await
}
