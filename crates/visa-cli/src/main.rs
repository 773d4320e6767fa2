//! `visa-cli`: the server (`visa-cli serve`) and the client commands of Visa Keys in one
//! binary. Everything lives in the library; this only reports errors as one line on stderr
//! and a non-zero exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = visa_cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(visa_cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
