//! `visa-cli spend`: calls, charges and refusals over time (`GET /v1/api/spend/series`), as a
//! table or CSV, for a session's account or the key in `VISA_API_KEY`.

use crate::cli::SpendArgs;
use crate::output::print_table;
use crate::settings;
use reqwest::Method;
use serde_json::Value;
use visa_core::money::{Micros, format_cents_as_dollars};
use visa_store::rules::Limit;

/// The limits a refusal may name (docs/errors.md).
const LIMITS: [&str; 6] = Limit::ALL_NAMES;

pub async fn run(args: SpendArgs, json: bool) -> anyhow::Result<()> {
    let from = time::OffsetDateTime::now_utc() - time::Duration::seconds(i64::try_from(args.since)?);
    let from = from.format(&time::format_description::well_known::Rfc3339)?;
    let group_by = args.by.replace('-', "_");
    let path = super::with_query(
        "/v1/api/spend/series",
        &[("from", Some(&from)), ("granularity", Some(&args.granularity)), ("group_by", Some(&group_by))],
    );
    let answer = settings::reader_client()?.send(Method::GET, &path, None).await?;
    let buckets = answer.body["buckets"].as_array().cloned().unwrap_or_default();
    if args.csv {
        return print_csv(&buckets);
    }
    super::show(&answer, json, |_| {
        let rows: Vec<Vec<String>> = buckets
            .iter()
            .map(|b| {
                let refused: Vec<String> = LIMITS
                    .iter()
                    .filter_map(|limit| b["refusals"][limit].as_i64().map(|n| format!("{n} {limit}")))
                    .collect();
                vec![
                    start(b, &args.granularity),
                    b["group"].as_str().unwrap_or("-").to_owned(),
                    b["calls"].to_string(),
                    format_cents_as_dollars(micros(b).cents_ceil()),
                    if refused.is_empty() { "-".into() } else { refused.join(", ") },
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no calls since {from}");
        } else {
            print_table(
                &[&args.granularity.to_uppercase(), &args.by.to_uppercase(), "CALLS", "CHARGED", "REFUSED"],
                &rows,
            );
        }
    });
    Ok(())
}

/// A bucket's start as a day (`2026-12-08`) or an hour (`2026-12-08 14:00`).
fn start(bucket: &Value, granularity: &str) -> String {
    let at = bucket["start"].as_str().unwrap_or_default();
    if granularity == "hour" {
        at.get(..16).unwrap_or(at).replace('T', " ")
    } else {
        at.get(..10).unwrap_or(at).to_owned()
    }
}

fn micros(bucket: &Value) -> Micros {
    Micros(bucket["charged_micros"].as_str().and_then(|m| m.parse().ok()).unwrap_or_default())
}

/// One row per bucket and group: its start, group, calls, charge and the refusals by limit.
fn print_csv(buckets: &[Value]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    let mut header = vec!["start", "group", "calls", "charged_micros", "charged_cents"];
    header.extend(LIMITS);
    out.write_record(&header)?;
    for b in buckets {
        let mut row = vec![
            b["start"].as_str().unwrap_or_default().to_owned(),
            b["group"].as_str().unwrap_or_default().to_owned(),
            b["calls"].to_string(),
            micros(b).to_string(),
            micros(b).cents_ceil().to_string(),
        ];
        row.extend(LIMITS.iter().map(|limit| b["refusals"][limit].as_i64().unwrap_or(0).to_string()));
        out.write_record(&row)?;
    }
    out.flush()?;
    Ok(())
}
