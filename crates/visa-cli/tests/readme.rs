//! The README runs as a script: its Quickstart's shell blocks (the steps after the server
//! started, and the "Then" block), extracted from README.md as they are, run top to bottom
//! under `bash -euo pipefail` against a fresh `visa-cli serve` started as the README starts it
//! (its working directory, the default `./visa-data`, a generated operator token). A README
//! command that fails, or that needs something the README does not give it, fails this test.

mod common;

use common::*;
use std::process::Command;
use std::sync::Arc;

/// The `sh` blocks of the Quickstart section and what follows it up to the next `## ` heading,
/// except the block that starts the server.
fn quickstart_blocks(readme: &str) -> Vec<String> {
    let start = readme.find("## Quickstart").expect("the README has a Quickstart");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = vec![];
    let mut rest = &section[..end];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("a closed block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks.into_iter().filter(|b| !b.trim_start().starts_with("cargo run")).collect()
}

#[test]
fn the_readme_quickstart_runs_top_to_bottom_as_a_script() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let blocks = quickstart_blocks(&readme);
    assert!(blocks.len() >= 2, "the steps and the Then block: {blocks:?}");
    let script = blocks.join("\n");
    for command in ["operator accounts create", "keys create", "members accept", "logout", "ledger verify"] {
        assert!(script.contains(command), "{command} is in the script");
    }

    let dirs = Arc::new(tempfile::tempdir().unwrap());
    let server = ServerProcess::start_as_in_the_readme(dirs.clone());
    let config = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dirs.path())
        .env("PATH", path)
        .env("VISA_API_URL", &server.url)
        .env("VISA_CONFIG_DIR", config.path())
        .env_remove("VISA_OPERATOR_TOKEN")
        .env_remove("VISA_SESSION_TOKEN")
        .env_remove("VISA_DATA_DIR")
        .env_remove("VISA_API_KEY")
        .output()
        .expect("bash runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the README failed ({}):\n{stdout}\n{stderr}", out.status);
    // What the steps promise: the paid call's envelope, a charge, a verified ledger, a backup.
    assert!(stdout.contains("\"charged_cents\":1"), "{stdout}");
    assert!(stdout.contains("ledger ok"), "{stdout}");
    assert!(dirs.path().join("visa-backup.db").is_file());
    // Step 1 gave the account a password: it prints no owner session token.
    assert!(!stdout.contains("session token"), "{stdout}");
    // The last command signed out: the stored session is gone.
    let whoami = Command::new(BIN)
        .arg("whoami")
        .env("VISA_API_URL", &server.url)
        .env("VISA_CONFIG_DIR", config.path())
        .output()
        .unwrap();
    assert!(!whoami.status.success(), "signed out: {}", String::from_utf8_lossy(&whoami.stdout));
}
