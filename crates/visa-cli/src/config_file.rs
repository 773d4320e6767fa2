//! `serve --config-file visa.toml`: a deployment is one file plus secrets. Every `serve` flag
//! that has an environment variable has a key in the file, spelled as the flag
//! (`max-connections = 4096`, `trusted-proxy = ["10.0.0.0/8"]`). The file only fills what the
//! environment leaves unset, so the precedence is: flag, then environment, then file, then the
//! built-in default. An unknown key, or a value that is not a string, number, boolean or list
//! of them, stops the server naming it.
//!
//! The file's settings join the command line as flags (`--max-connections=4096`), never the
//! process environment (which other threads may be reading): each one that no flag on the
//! command line and no environment variable gives already, so clap checks them as it checks
//! flags and the precedence above holds.

use std::ffi::OsString;
use std::path::Path;

/// `(key, environment variable)` of every setting the file may hold.
fn settings() -> Vec<(String, String)> {
    let command = <crate::Cli as clap::CommandFactory>::command();
    command
        .find_subcommand("serve")
        .map(|serve| {
            serve
                .get_arguments()
                .filter_map(|arg| Some((arg.get_long()?.to_owned(), arg.get_env()?.to_str()?.to_owned())))
                .filter(|(key, _)| key != "config-file")
                .collect()
        })
        .unwrap_or_default()
}

/// The flags the file at `path` adds to the command line `args`: one `--key=value` for each of
/// its settings that `args` does not give as a flag and whose environment variable
/// `in_environment` says is unset.
pub fn arguments(
    path: &Path,
    args: &[OsString],
    in_environment: impl Fn(&str) -> bool,
) -> Result<Vec<OsString>, String> {
    let given = |key: &str| {
        let flag = format!("--{key}");
        args.iter().filter_map(|a| a.to_str()).any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    Ok(read(path)?
        .into_iter()
        .filter(|(key, env, _)| !given(key) && !in_environment(env))
        .map(|(key, _, value)| format!("--{key}={value}").into())
        .collect())
}

/// The `(key, environment variable, value)` of every setting the file holds, checked.
fn read(path: &Path) -> Result<Vec<(String, String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
    let known = settings();
    table
        .into_iter()
        .map(|(key, value)| {
            let Some((_, env)) = known.iter().find(|(k, _)| *k == key) else {
                let names: Vec<&str> = known.iter().map(|(k, _)| k.as_str()).collect();
                return Err(format!("{}: unknown setting '{key}' (known: {})", path.display(), names.join(", ")));
            };
            let text = match value {
                toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>().map(|v| v.join(",")),
                other => scalar(&other),
            };
            let text = text.ok_or_else(|| {
                format!("{}: '{key}' must be a string, number, boolean or a list of them", path.display())
            })?;
            Ok((key, env.clone(), text))
        })
        .collect()
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}
