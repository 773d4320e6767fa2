//! The page shell every dashboard page shares: the environment banner (a preview server is
//! marked on every page), the navigation bar, the signed-in member and the sign-out button;
//! the security headers of every dashboard response; the stylesheet (no inline style or
//! script anywhere, so the Content-Security-Policy forbids both).

use super::paths;
use super::session::Browser;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use visa_core::key::Environment;
use visa_store::Actor;

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The navigation bar's pages, in order: (path, title).
const NAV: [(&str, &str); 8] = [
    (paths::OVERVIEW, "Overview"),
    (paths::KEYS, "Keys"),
    (paths::SPEND, "Spend"),
    (paths::AUDIT, "Audit log"),
    (paths::MEMBERS, "Members"),
    (paths::ADMIN_KEYS, "Admin keys"),
    (paths::CONNECTED, "Connected apps"),
    (paths::WEBHOOKS, "Webhooks"),
];

/// Headers of every dashboard response: nothing cached (a page may show a raw key once), no
/// framing, no referrer to other sites (`same-origin`: with `no-referrer` browsers send
/// `Origin: null` on our own forms), the strict policy above unless the page set its own
/// (the OAuth consent page widens `form-action` to the application's redirect URI).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const STYLESHEET: &str = include_str!("style.css");

pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLESHEET)
}

pub async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("app.js"))
}

/// The banner that says which environment this server is.
fn environment_banner(state: &AppState) -> Markup {
    match state.environment {
        Environment::Preview => html! {
            p.banner.preview role="status" { "Preview server: test keys, sandboxed tools, nothing is charged." }
        },
        Environment::Production => html! {
            p.banner.production { "Production: live keys, real charges." }
        },
    }
}

/// Every page: the document, its head and the environment banner, then `content`.
fn document(state: &AppState, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Visa Keys" }
                link rel="stylesheet" href="/dashboard/style.css";
                script src="/dashboard/app.js" defer {}
            }
            body {
                (environment_banner(state))
                (content)
            }
        }
    }
}

/// A page outside a session (signing in).
pub fn bare(state: &AppState, title: &str, body: Markup) -> Markup {
    document(state, title, html! { main { (body) } })
}

/// A page of a signed-in member, `current` being its path in the navigation bar.
pub fn page(state: &AppState, browser: &Browser, current: &str, title: &str, body: Markup) -> Markup {
    let who = match &browser.session.actor {
        Actor::Member { login, .. } => login.as_str(),
        _ => "",
    };
    let content = html! {
        header {
            nav aria-label="Main" {
                ul {
                    @for (path, name) in NAV {
                        li {
                            @if path == current { a href=(path) aria-current="page" { (name) } }
                            @else { a href=(path) { (name) } }
                        }
                    }
                }
            }
            form.sign-out method="post" action="/dashboard/sign-out" {
                span { (who) " · " (browser.session.role.as_str()) " · " (browser.session.account.login) }
                input type="hidden" name="csrf" value=(browser.csrf);
                button type="submit" { "Sign out" }
            }
        }
        main { h1 { (title) } (body) }
    };
    document(state, title, content)
}

/// An API timestamp (RFC 3339, UTC) for people: `2026-12-05 19:25 UTC`, the exact value in
/// the `<time>` element (and its tooltip).
pub fn when(rfc3339: &str) -> Markup {
    let readable = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).ok())
        .unwrap_or_else(|| rfc3339.to_owned());
    html! { time datetime=(rfc3339) title=(rfc3339) { (readable) } }
}

/// `n` and its noun, singular for one: `1 request`, `3 requests`.
pub fn count(n: impl Into<i64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// A form or query value that was given: trimmed, `None` when absent or empty.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().and_then(nonblank)
}

fn nonblank(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|v| !v.is_empty())
}

/// A query string (`a=1&b=x`) of the pairs whose value is given, each percent-encoded.
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let given = pairs.iter().filter_map(|(name, value)| Some((name, value.and_then(nonblank)?)));
    given.map(|(name, value)| format!("{name}={}", urlencode(value))).collect::<Vec<_>>().join("&")
}

/// A query-string value, percent-encoded.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A page that asks before an action that cannot be undone: `message`, then a button that
/// posts to `action`, and a way back to `current`.
pub fn confirm(
    state: &AppState,
    browser: &Browser,
    current: &str,
    title: &str,
    message: Markup,
    action: &str,
    button: &str,
) -> Response {
    let body = html! {
        p { (message) }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(browser.csrf);
            button.danger type="submit" { (button) }
        }
        p { a href=(current) { "Cancel" } }
    };
    page(state, browser, current, title, body).into_response()
}

/// What the API refused, as a page: its status and its message, and the way back.
pub fn refused(state: &AppState, browser: &Browser, current: &str, error: ApiError) -> Response {
    let status = StatusCode::from_u16(error.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = html! {
        p.error role="alert" { (error.0.message) }
        p { a href=(current) { "Back" } }
    };
    (status, page(state, browser, current, "Not done", body)).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_query_string_has_the_given_pairs_encoded() {
        let pairs = [("a", Some("1")), ("b", None), ("c", Some(" ")), ("d", Some("x y&z"))];
        assert_eq!(super::query_string(&pairs), "a=1&d=x%20y%26z");
        assert_eq!(super::query_string(&[("a", None)]), "");
    }

    /// A browser drops the rule after a stray `}` and closes an unclosed block at the end of
    /// the file, silently: every brace must close one that is open, and all must be closed.
    #[test]
    fn the_stylesheet_braces_balance() {
        let mut depth = 0_i32;
        for (line, text) in super::STYLESHEET.lines().enumerate() {
            depth += text.matches('{').count() as i32 - text.matches('}').count() as i32;
            assert!(depth >= 0, "style.css line {}: a `}}` closes nothing", line + 1);
        }
        assert_eq!(depth, 0, "style.css ends inside a block");
    }
}
