//! The OAuth consent page (MCP's authorize step, `app::oauth`) and the connected applications.
//!
//! - `authorize`: a signed-in member sees which application asks and where it will be sent
//!   back, chooses the tools, a daily and a total cap and how many days the grant lasts
//!   (defaults: the tools the application asked for through `scope`, or all when it named none;
//!   $10 in total; 7 days), and approves or declines. The page's Content-Security-Policy lets
//!   its form lead to the application's registered redirect URI (a browser enforces
//!   `form-action` on the redirect after the post), and nothing else.
//! - `connected`: the grants of the account (application, redirect URIs, key, status, last use,
//!   spend), each revoked by revoking its key.

use super::layout;
use super::policy::dollars_field;
use super::session::{Browser, Submitted};
use crate::app::oauth::{self, Authorize, AuthorizeParams, AuthorizeRefusal, Consent};
use crate::error::ApiError;
use crate::extract::PublicOrigin;
use crate::mcp;
use crate::state::{AppState, SharedState};
use crate::wire::keys::KeyView;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use visa_core::money::format_cents_as_dollars;
use visa_core::role::Permission;

pub use super::paths::CONNECTED as PATH;
pub use crate::oauth::AUTHORIZE_PATH;

/// The consent page's policy: the dashboard's, with the application's redirect URI's origin
/// (or private-use scheme) allowed as a form's destination.
fn consent_csp(redirect_uri: &str) -> Option<HeaderValue> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let destination = match url.scheme() {
        "http" | "https" => url.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    };
    HeaderValue::from_str(&layout::CSP.replace("form-action 'self'", &format!("form-action 'self' {destination}"))).ok()
}

pub async fn authorize(
    State(state): State<SharedState>,
    origin: PublicOrigin,
    browser: Browser,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    match oauth::check_authorize(&state, &params, &mcp::resource_url(&origin)).await {
        Ok(request) => consent_page(&state, &browser, &request, None, StatusCode::OK),
        Err(refusal) => refused(&state, &browser, refusal),
    }
}

/// The member's decision: approved, the application is sent its code; declined, its error.
pub async fn decide(
    State(state): State<SharedState>,
    origin: PublicOrigin,
    Submitted { browser, fields }: Submitted,
) -> Response {
    let field = |name: &str| Some(fields.get(name).to_owned()).filter(|v| !v.is_empty());
    let params = AuthorizeParams {
        response_type: field("response_type"),
        client_id: field("client_id"),
        redirect_uri: field("redirect_uri"),
        code_challenge: field("code_challenge"),
        code_challenge_method: field("code_challenge_method"),
        state: field("state"),
        scope: field("scope"),
        resource: field("resource"),
    };
    let request = match oauth::check_authorize(&state, &params, &mcp::resource_url(&origin)).await {
        Ok(request) => request,
        Err(refusal) => return refused(&state, &browser, refusal),
    };
    if fields.get("decision") != "approve" {
        return Redirect::to(&oauth::deny(&request)).into_response();
    }
    let consent = || -> Result<Consent, ApiError> {
        Ok(Consent {
            tools: fields.all("tool"),
            daily_cap_cents: fields.cents("daily_cap", "Daily cap")?,
            total_cap_cents: fields.cents("total_cap", "Total cap")?.unwrap_or(oauth::DEFAULT_TOTAL_CAP_CENTS),
            days: fields.integer("days", "Days")?.unwrap_or(oauth::DEFAULT_GRANT_DAYS),
        })
    };
    let approved = match consent() {
        Ok(consent) => oauth::approve(&state, &browser.session, &request, consent).await,
        Err(e) => Err(e),
    };
    match approved {
        Ok(destination) => Redirect::to(&destination).into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.0.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
            consent_page(&state, &browser, &request, Some(&e.0.message), status)
        }
    }
}

fn refused(state: &AppState, browser: &Browser, refusal: AuthorizeRefusal) -> Response {
    match refusal {
        AuthorizeRefusal::Redirect(destination) => Redirect::to(&destination).into_response(),
        AuthorizeRefusal::Shown(message) => {
            let body = html! { p.error role="alert" { (message) } p { "Nothing was shared with the application." } };
            (StatusCode::BAD_REQUEST, layout::page(state, browser, PATH, "Connect an application", body))
                .into_response()
        }
    }
}

fn consent_page(
    state: &AppState,
    browser: &Browser,
    request: &Authorize,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let client = &request.client;
    let may_approve = browser.session.role.allows(Permission::ManageKeys);
    let checked = |tool: &str| request.requested_tools.is_empty() || request.requested_tools.iter().any(|t| t == tool);
    let hidden = [
        ("response_type", Some("code")),
        ("client_id", Some(client.client_id.as_str())),
        ("redirect_uri", Some(request.redirect_uri.as_str())),
        ("code_challenge", Some(request.code_challenge.as_str())),
        ("code_challenge_method", Some("S256")),
        ("state", request.state.as_deref()),
        ("scope", Some(&*request.requested_tools.join(" "))),
        ("resource", Some(request.resource.as_str())),
    ];
    let body = html! {
        p.consent {
            strong { (client.name) } " asks to run paid tools of " strong { (browser.session.account.login) }
            " over MCP, spending from this account's balance."
        }
        p { "Approving mints a key for it with the limits below; it will be sent back to " code { (request.redirect_uri) } "." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        @if may_approve {
            form.consent method="post" action=(AUTHORIZE_PATH) {
                input type="hidden" name="csrf" value=(browser.csrf);
                @for (name, value) in hidden {
                    @if let Some(value) = value { input type="hidden" name=(name) value=(value); }
                }
                fieldset {
                    legend { "Tools it may run" }
                    @for tool in state.catalog.tools() {
                        label.tool { input type="checkbox" name="tool" value=(tool.id) checked[checked(&tool.id)]; " " (tool.id) }
                    }
                }
                label for="daily_cap" { "Daily cap (dollars)" }
                input #daily_cap name="daily_cap" type="text" inputmode="decimal" placeholder="10.00";
                label for="total_cap" { "Total cap (dollars)" }
                input #total_cap name="total_cap" type="text" inputmode="decimal" required value=(dollars_field(Some(oauth::DEFAULT_TOTAL_CAP_CENTS)));
                label for="days" { "Days until the grant ends" }
                input #days name="days" type="number" min="1" max=(oauth::MAX_GRANT_DAYS) required value=(oauth::DEFAULT_GRANT_DAYS);
                button type="submit" name="decision" value="approve" { "Approve" }
                button.secondary type="submit" name="decision" value="deny" formnovalidate { "Decline" }
            }
        } @else {
            p.error role="alert" {
                "Your role (" (browser.session.role.as_str()) ") cannot connect applications: ask an owner, an admin or a developer."
            }
        }
    };
    let mut response = (status, layout::page(state, browser, PATH, "Connect an application", body)).into_response();
    if let Some(csp) = consent_csp(&request.redirect_uri) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The applications connected to the account, newest first.
pub async fn connected(State(state): State<SharedState>, browser: Browser) -> Response {
    let grants = match oauth::connected(&state, &browser.session).await {
        Ok(grants) => grants,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let manage = browser.session.role.allows(Permission::ManageKeys);
    let now = state.now();
    let body = html! {
        p { "Applications that signed in over OAuth (MCP clients such as Claude or Cursor). Each holds a key with the "
            "limits approved for it; revoking the key disconnects the application at once." }
        @if grants.is_empty() { p { "No connected applications." } } @else {
            table.connected {
                caption { "Connected applications, newest first" }
                thead { tr {
                    th scope="col" { "Application" } th scope="col" { "Redirect URIs" } th scope="col" { "Key" }
                    th scope="col" { "Status" } th scope="col" { "Approved" } th scope="col" { "Last used" }
                    th scope="col" { "Spent" } @if manage { th scope="col" { "Revoke" } }
                } }
                tbody {
                    @for grant in &grants {
                        @let key = KeyView::new(&grant.key, now);
                        tr {
                            td { (grant.client.name) }
                            td { @for uri in &grant.client.redirect_uris { code { (uri) } " " } }
                            td { a href={ "/dashboard/keys/" (key.id) } { (key.label) } }
                            td { (key.status) }
                            td { (grant.approved_by) " · " (layout::when(&key.created_at)) }
                            td { @if let Some(at) = &key.last_used_at { (layout::when(at)) } @else { "never" } }
                            td { (format_cents_as_dollars(key.spent_total_cents)) }
                            @if manage {
                                td { @if key.status == "active" {
                                    a.danger href={ "/dashboard/keys/" (key.id) "/revoke" } { "Revoke " (grant.client.name) "…" }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&state, &browser, PATH, "Connected applications", body).into_response()
}
