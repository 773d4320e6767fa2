//! Printing answers: the raw JSON with `--json`, else short readable views and tables.

use serde_json::Value;
use visa_core::money::format_cents_as_dollars;

pub fn print_json(body: &Value) {
    println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
}

/// A field as text: strings bare, null as `-`, anything else as JSON.
pub fn field(value: &Value, name: &str) -> String {
    match value.get(name) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A cents field as dollars (`-` when absent or null).
pub fn dollars(value: &Value, name: &str) -> String {
    value.get(name).and_then(Value::as_i64).map(format_cents_as_dollars).unwrap_or_else(|| "-".to_owned())
}

/// Left-aligned columns sized to their widest cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}
