//! `serve --config-file visa.toml`: a deployment is one file plus secrets. Every `serve` flag
//! that has an environment variable has a key in the file, spelled as the flag
//! (`max-connections = 4096`, `trusted-proxy = ["10.0.0.0/8"]`). The file only fills what the
//! environment leaves unset, so the precedence is: flag, then environment, then file, then the
//! built-in default. An unknown key, or a value that is not a string, number, boolean or list
//! of them, stops the server naming it.

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

/// The `(environment variable, value)` pairs the file provides, checked.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
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
            Ok((env.clone(), text))
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
