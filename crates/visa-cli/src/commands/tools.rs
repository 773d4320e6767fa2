//! `visa-cli tools`: the catalog with prices and readiness.

use crate::output::{field, print_table};
use crate::settings;
use reqwest::Method;
use serde_json::Value;
use visa_core::money::{Micros, format_cents_as_dollars};

pub async fn run(json: bool) -> anyhow::Result<()> {
    let answer = settings::anonymous_client()?.send(Method::GET, "/v1/api/tools", None).await?;
    super::show(&answer, json, |body| {
        let rows: Vec<Vec<String>> = body["tools"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let price = t["price_micros"].as_str().and_then(|m| m.parse().ok()).map(|m| Micros(m).cents_ceil());
                vec![
                    field(t, "id"),
                    price.map(format_cents_as_dollars).unwrap_or_else(|| "-".into()),
                    field(t, "adapter"),
                    if t["ready"] == Value::Bool(true) { "yes".into() } else { "no".into() },
                    field(t, "description"),
                ]
            })
            .collect();
        print_table(&["TOOL", "PRICE", "ADAPTER", "READY", "DESCRIPTION"], &rows);
    });
    Ok(())
}
