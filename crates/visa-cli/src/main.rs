//! `visa-cli`: the server (`visa-cli serve`) and the client commands of Visa Keys in one
//! binary. Everything lives in the library; this only reports errors on stderr with a
//! non-zero exit code: a command's failure as one line, a command line clap cannot parse as
//! clap explains it (the missing argument, "a similar subcommand exists", possible values).

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Help and version go to stdout with exit 0; parse errors, whole, to stderr with exit 2.
    let cli = visa_cli::Cli::try_parse().unwrap_or_else(|e| e.exit());
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
