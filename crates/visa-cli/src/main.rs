//! `visa-cli`: the server (`visa-cli serve`) and the client commands of Visa Keys in one
//! binary. Everything lives in the library; this only reports errors on stderr with a
//! non-zero exit code: a command's failure as one line, a command line clap cannot parse as
//! clap explains it (the missing argument, "a similar subcommand exists", possible values).

use clap::Parser;

/// mimalloc instead of the C library's allocator: a request allocates many small, short-lived
/// objects (JSON trees, rmcp's messages), and glibc's `malloc` and `free` were a quarter of the
/// server's CPU on the MCP path (bench/README.md, "MCP").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Help and version go to stdout with exit 0; parse errors, whole, to stderr with exit 2.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cli = visa_cli::Cli::try_parse_from(&args).unwrap_or_else(|e| e.exit());
    if let visa_cli::Command::Serve(serve) = &cli.command
        && let Some(path) = &serve.config_file
    {
        let in_environment = |variable: &str| std::env::var_os(variable).is_some();
        let from_file = match visa_cli::config_file::arguments(path, &args, in_environment) {
            Ok(flags) => flags,
            Err(message) => {
                eprintln!("error: {message}");
                return std::process::ExitCode::FAILURE;
            }
        };
        // Parsed again with the file's settings as flags, so they meet the same checks.
        cli = visa_cli::Cli::try_parse_from(args.into_iter().chain(from_file)).unwrap_or_else(|e| e.exit());
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
