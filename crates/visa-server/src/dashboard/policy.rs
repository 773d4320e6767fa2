//! A key's policy as a form: the same fields as `POST /v1/api/keys` and `PATCH
//! /v1/api/keys/{id}`, caps in dollars, tools chosen from the catalog, shared by "Create key"
//! and a key's "Save policy". Read back into the API's request types; the API validates.

use super::form::Fields;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::keys::{CreateKeyRequest, KeyView, UpdateKeyRequest};
use maud::{Markup, html};
use visa_core::money::format_cents_as_dollars;
use visa_store::{end_user_rule_name, idempotency_name};

/// The policy as typed in the form.
pub struct Policy {
    label: String,
    scope: &'static str,
    tools: Vec<String>,
    daily_cap_cents: Option<i64>,
    total_cap_cents: Option<i64>,
    allowed_cidrs: Vec<String>,
    expires_at: Option<String>,
    read_only: bool,
    rate_limit_per_second: Option<i64>,
    idempotency_optional: bool,
    cap_alert_percent: Option<i64>,
    end_user_required: bool,
    end_user_daily_cap_cents: Option<i64>,
    end_user_total_cap_cents: Option<i64>,
}

impl Policy {
    pub fn read(fields: &Fields) -> Result<Self, ApiError> {
        let restricted = fields.get("scope") == "restricted";
        Ok(Policy {
            label: fields.get("label").to_owned(),
            scope: if restricted { "restricted" } else { "all_supported_tools" },
            tools: if restricted { fields.all("tool") } else { Vec::new() },
            daily_cap_cents: fields.cents("daily_cap", "Daily cap")?,
            total_cap_cents: fields.cents("total_cap", "Total cap")?,
            allowed_cidrs: fields.list("allowed_cidrs"),
            expires_at: fields.utc_instant("expires_at"),
            read_only: fields.checked("read_only"),
            rate_limit_per_second: fields.integer("rate_limit", "Rate limit")?,
            idempotency_optional: fields.checked("idempotency_optional"),
            cap_alert_percent: fields.integer("cap_alert_percent", "Cap alert")?,
            end_user_required: fields.checked("end_user_required"),
            end_user_daily_cap_cents: fields.cents("end_user_daily_cap", "Daily cap per end user")?,
            end_user_total_cap_cents: fields.cents("end_user_total_cap", "Total cap per end user")?,
        })
    }

    pub fn into_create(self) -> CreateKeyRequest {
        CreateKeyRequest {
            label: self.label,
            tool_scope: Some(self.scope.to_owned()),
            allowed_tools: (self.scope == "restricted").then_some(self.tools),
            daily_cap_cents: self.daily_cap_cents,
            total_cap_cents: self.total_cap_cents,
            allowed_cidrs: Some(self.allowed_cidrs),
            expires_at: self.expires_at,
            read_only: Some(self.read_only),
            rate_limit_per_second: self.rate_limit_per_second,
            idempotency: Some(idempotency_name(self.idempotency_optional).to_owned()),
            cap_alert_percent: self.cap_alert_percent,
            end_user: Some(end_user_rule_name(self.end_user_required).to_owned()),
            end_user_daily_cap_cents: self.end_user_daily_cap_cents,
            end_user_total_cap_cents: self.end_user_total_cap_cents,
        }
    }

    /// Every field as the form shows it: an emptied total cap, end-user cap or expiry removes it.
    pub fn into_update(self) -> UpdateKeyRequest {
        UpdateKeyRequest {
            label: Some(Some(self.label)),
            tool_scope: Some(Some(self.scope.to_owned())),
            allowed_tools: (self.scope == "restricted").then_some(Some(self.tools)),
            daily_cap_cents: self.daily_cap_cents.map(Some),
            total_cap_cents: Some(self.total_cap_cents),
            allowed_cidrs: Some(Some(self.allowed_cidrs)),
            expires_at: Some(self.expires_at),
            read_only: Some(Some(self.read_only)),
            rate_limit_per_second: self.rate_limit_per_second.map(Some),
            idempotency: Some(Some(idempotency_name(self.idempotency_optional).to_owned())),
            cap_alert_percent: self.cap_alert_percent.map(Some),
            end_user: Some(Some(end_user_rule_name(self.end_user_required).to_owned())),
            end_user_daily_cap_cents: Some(self.end_user_daily_cap_cents),
            end_user_total_cap_cents: Some(self.end_user_total_cap_cents),
        }
    }
}

/// A field's value in dollars (`12.50`, no sign), empty for none.
pub fn dollars_field(cents: Option<i64>) -> String {
    cents.map(|c| format_cents_as_dollars(c).trim_start_matches('$').to_owned()).unwrap_or_default()
}

/// The form, filled from `key` when editing one.
pub fn form(state: &AppState, action: &str, csrf: &str, key: Option<&KeyView>, submit: &str) -> Markup {
    let restricted = key.is_some_and(|k| k.tool_scope == "restricted");
    let allowed = |tool: &str| key.is_some_and(|k| k.allowed_tools.iter().any(|t| t == tool));
    let expires = key.and_then(|k| k.expires_at.as_deref()).map(|at| at.chars().take(16).collect::<String>());
    html! {
        form.policy method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            label for="label" { "Label" }
            input #label name="label" type="text" required maxlength="100" value=[key.map(|k| k.label.as_str())];
            fieldset {
                legend { "Tools" }
                label { input type="radio" name="scope" value="all" checked[!restricted]; " All supported tools" }
                label { input type="radio" name="scope" value="restricted" checked[restricted]; " Only these:" }
                @for tool in state.catalog.tools() {
                    label.tool { input type="checkbox" name="tool" value=(tool.id) checked[allowed(&tool.id)]; " " (tool.id) }
                }
            }
            label for="daily_cap" { "Daily cap (dollars)" }
            input #daily_cap name="daily_cap" type="text" inputmode="decimal" placeholder="10.00"
                value=(dollars_field(key.map(|k| k.daily_cap_cents)));
            label for="total_cap" { "Total cap (dollars, empty for none)" }
            input #total_cap name="total_cap" type="text" inputmode="decimal"
                value=(dollars_field(key.and_then(|k| k.total_cap_cents)));
            label for="cap_alert_percent" { "Cap alert (percent of a cap whose passing sends key.cap.threshold)" }
            input #cap_alert_percent name="cap_alert_percent" type="number" min="1" max="100" placeholder="80"
                value=[key.map(|k| k.cap_alert_percent)];
            label for="allowed_cidrs" { "Allowed source networks (CIDR, one per line; empty for any)" }
            textarea #allowed_cidrs name="allowed_cidrs" rows="2" { (key.map(|k| k.allowed_cidrs.join("\n")).unwrap_or_default()) }
            label for="expires_at" { "Expires (UTC, empty for never)" }
            input #expires_at name="expires_at" type="datetime-local" value=[expires];
            label for="rate_limit" { "Rate limit (requests per second)" }
            input #rate_limit name="rate_limit" type="number" min="1" max="100000" placeholder="100"
                value=[key.map(|k| k.rate_limit_per_second)];
            label { input name="read_only" type="checkbox" value="on" checked[key.is_some_and(|k| k.read_only)]; " Read-only (may not run paid tools)" }
            label {
                input name="idempotency_optional" type="checkbox" value="on" checked[key.is_some_and(|k| k.idempotency == "optional")];
                " Idempotency-Key optional on the OpenAI-compatible surface (for frameworks that cannot set a header per call; their retries may be charged twice)"
            }
            label {
                input name="end_user_required" type="checkbox" value="on" checked[key.is_some_and(|k| k.end_user == "required")];
                " End user required (every paid call must name the end user it is made for)"
            }
            label for="end_user_daily_cap" { "Daily cap per end user (dollars, empty for none)" }
            input #end_user_daily_cap name="end_user_daily_cap" type="text" inputmode="decimal"
                value=(dollars_field(key.and_then(|k| k.end_user_daily_cap_cents)));
            label for="end_user_total_cap" { "Total cap per end user (dollars, empty for none)" }
            input #end_user_total_cap name="end_user_total_cap" type="text" inputmode="decimal"
                value=(dollars_field(key.and_then(|k| k.end_user_total_cap_cents)));
            button type="submit" { (submit) }
        }
    }
}
