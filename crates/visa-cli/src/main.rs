//! `visa-cli`: the server (`visa-cli serve`) and the client commands of Visa Keys in one
//! binary. Everything lives in the library; this only reports errors on stderr with a
//! non-zero exit code: a command's failure as one line, a command line clap cannot parse as
//! clap explains it (the missing argument, "a similar subcommand exists", possible values).

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Help and version go to stdout with exit 0; parse errors, whole, to stderr with exit 2.
    let mut cli = visa_cli::Cli::try_parse().unwrap_or_else(|e| e.exit());
    if let visa_cli::Command::Serve(args) = &cli.command
        && let Some(path) = &args.config_file
    {
        let settings = match visa_cli::config_file::read(path) {
            Ok(settings) => settings,
            Err(message) => {
                eprintln!("error: {message}");
                return std::process::ExitCode::FAILURE;
            }
        };
        for (variable, value) in settings.into_iter().filter(|(v, _)| std::env::var_os(v).is_none()) {
            // SAFETY: no other thread exists yet (the runtime starts below).
            unsafe { std::env::set_var(variable, value) };
        }
        // Parsed again, so the file's values meet the same checks as flags.
        cli = visa_cli::Cli::try_parse().unwrap_or_else(|e| e.exit());
    }
    if !matches!(cli.command, visa_cli::Command::Serve(_)) {
        // A reader that stops early (`visa-cli keys create … | head -1`) ends a client command
        // quietly, as it does any Unix tool, instead of a "broken pipe" panic. The server keeps
        // Rust's default (ignored), so a client closing its socket never stops it.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
