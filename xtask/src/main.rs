//! `cargo xtask test` — the one command that runs the whole test suite on a fresh machine
//! (README, `.ci/run`). It installs what is missing (Debian's packages: PostgreSQL, Chromium and
//! chromedriver, Node.js and npm, Python's venv module), makes the Python venv the tests use,
//! starts a throwaway PostgreSQL cluster on a free loopback port (stopped at the end), and runs
//! `cargo test --workspace` twice: on SQLite, then with `VISA_TEST_DATABASE=postgres`.
//! Arguments after `test` go to both `cargo test` runs (e.g. `cargo xtask test -- --nocapture`).
//!
//! A plain `cargo test` still works in development; a test whose component is missing then
//! fails and names this command.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        _ => Err("usage: cargo xtask test [ARGS FOR cargo test…]".to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_owned()
}

fn test(cargo_args: &[String]) -> Result<()> {
    let root = workspace();
    install_missing()?;
    let venv = python_venv(&root)?;
    let postgres = Postgres::start()?;
    let sqlite_pass = cargo_test(&root, cargo_args, &venv, &postgres, "sqlite");
    let postgres_pass = cargo_test(&root, cargo_args, &venv, &postgres, "postgres");
    match (sqlite_pass, postgres_pass) {
        (Ok(()), Ok(())) => Ok(()),
        (sqlite, postgres) => Err(format!(
            "the suite failed: on SQLite {}, on PostgreSQL {}",
            sqlite.map_or_else(|e| e, |()| "passed".into()),
            postgres.map_or_else(|e| e, |()| "passed".into())
        )),
    }
}

fn cargo_test(root: &Path, args: &[String], venv: &Path, postgres: &Postgres, backend: &str) -> Result<()> {
    println!("xtask: cargo test --workspace on {backend}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        // Every test binary runs even after one fails, so a run reports every failure at once.
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .env("VISA_TEST_DATABASE", backend)
        .env("VISA_TEST_POSTGRES_URL", &postgres.url)
        // The fault suite restarts the server under load (test binaries run one at a time, and
        // that suite's scenarios one after another, so no other test sees it).
        .env("VISA_TEST_POSTGRES_RESTART", postgres.restart_command())
        .env("VISA_PYTHON_VENV", venv)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("failed ({status})")) }
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Debian's packages for what is missing, installed with apt-get (as root), or an error naming them.
fn install_missing() -> Result<()> {
    let venv_works = Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let wanted: [(&[&str], bool); 5] = [
        (&["postgresql"], postgres_bin().is_some()),
        // The fault suite runs nodes whose clocks are set apart (crates/visa-cli/tests/faults.rs).
        (&["faketime"], Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1").exists()),
        (&["chromium", "chromium-driver"], on_path("chromedriver")),
        (&["nodejs", "npm"], on_path("npm")),
        (&["python3-venv"], venv_works),
    ];
    let missing: Vec<&str> =
        wanted.iter().filter(|(_, present)| !present).flat_map(|(p, _)| p.iter().copied()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !on_path("apt-get") {
        return Err(format!("the tests need these packages: apt-get install {}", missing.join(" ")));
    }
    println!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().map_err(|e| format!("{command:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command:?}: {status}")) }
}

/// The venv of `tests/python/requirements.txt` under the target dir; the copied requirements
/// file is the stamp by which the tests know it is current.
fn python_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/python-venv");
    let requirements = root.join("tests/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| format!("{}: {e}", requirements.display()))?;
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        println!("xtask: making the Python venv {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/pip")).args(["install", "-q", "-r"]).arg(&requirements))?;
        std::fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    Ok(venv)
}

/// A throwaway PostgreSQL cluster in a temp dir on a free loopback port, trusting local
/// connections; stopped (immediately) and removed when dropped.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    url: String,
}

impl Postgres {
    fn start() -> Result<Self> {
        let bin = postgres_bin().ok_or("PostgreSQL is not installed: apt-get install postgresql")?;
        let dir = tempfile::tempdir().map_err(|e| format!("a temp dir for PostgreSQL: {e}"))?;
        let root = is_root();
        if root {
            // PostgreSQL refuses to run as root: its files belong to the postgres user.
            run(Command::new("chown").arg("postgres").arg(dir.path()))?;
        }
        let as_owner = |program: &str| {
            let mut command = if root { Command::new("runuser") } else { Command::new(bin.join(program)) };
            if root {
                command.args(["-u", "postgres", "--"]).arg(bin.join(program));
            }
            command
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let data = dir.path().join("data");
        run(as_owner("initdb").arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust"]).stdout(Stdio::null()))?;
        let options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=500", dir.path().display());
        let log = dir.path().join("log");
        run(as_owner("pg_ctl").arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-o", &options, "start"]))?;
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
        println!("xtask: PostgreSQL on 127.0.0.1:{port}");
        Ok(Self { bin, dir, url })
    }
}

impl Postgres {
    /// `pg_ctl` on this cluster, run as its owner.
    fn pg_ctl(&self) -> Vec<String> {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let data = self.dir.path().join("data").display().to_string();
        let owner =
            if is_root() { vec!["runuser".into(), "-u".into(), "postgres".into(), "--".into()] } else { vec![] };
        owner.into_iter().chain([pg_ctl, "-D".into(), data]).collect()
    }

    /// The command (words separated by spaces) that restarts the cluster, ending every session.
    fn restart_command(&self) -> String {
        let mut words = self.pg_ctl();
        let log = self.dir.path().join("log").display().to_string();
        words.extend(["-l".into(), log]);
        words.extend(["-w", "-m", "fast", "restart"].map(String::from));
        words.join(" ")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let words = self.pg_ctl();
        let _ =
            Command::new(&words[0]).args(&words[1..]).args(["-m", "immediate", "stop"]).stdout(Stdio::null()).status();
    }
}
