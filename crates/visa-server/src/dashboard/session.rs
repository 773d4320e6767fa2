//! The dashboard's session: the API's session token, carried in a cookie that only
//! `/dashboard` receives (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS, the session's
//! lifetime), resolved exactly as a bearer token is. Every state-changing request carries a
//! CSRF token derived from the session token (so it is bound to the session and dies with it)
//! and, when the browser sends one, an `Origin` equal to the server's own.

use super::form::Fields;
use crate::auth::{Origin, Session};
use crate::extract::ViaHttps;
use crate::state::SharedState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const COOKIE: &str = "visa_session";
const PATH: &str = "/dashboard";

/// A signed-in browser: the member's API session and the CSRF token of its forms.
pub struct Browser {
    pub session: Session,
    pub csrf: String,
}

/// A state-changing request from one of our own forms: the signed-in browser and the form's
/// fields, accepted only with this session's CSRF token and, when the browser sends one, our
/// own `Origin` — checked here, before any handler runs.
pub struct Submitted {
    pub browser: Browser,
    pub fields: Fields,
}

impl FromRequest<SharedState> for Submitted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let browser = Browser::from_request_parts(&mut parts, state).await?;
        let same_site = same_origin(&parts.headers);
        let fields = Fields::from_request(Request::from_parts(parts, body), state).await?;
        let same_token: bool = browser.csrf.as_bytes().ct_eq(fields.get("csrf").as_bytes()).into();
        if !same_site || !same_token {
            return Err(CrossSite.into_response());
        }
        Ok(Submitted { browser, fields })
    }
}

/// A state-changing request that did not come from our own form: refused, nothing changed.
pub struct CrossSite;

impl IntoResponse for CrossSite {
    fn into_response(self) -> Response {
        (StatusCode::FORBIDDEN, "This form is stale or came from another site. Reload the page.").into_response()
    }
}

/// The session token in the request's cookie, if any.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE).then_some(value))
}

/// The CSRF token of a session: a one-way digest of its token, so a page shows it without
/// showing the session, and it changes with every session.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new().chain_update(b"visa-dashboard-csrf\0").chain_update(session_token).finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `Origin`, when present, must name this server (`Host`); browsers send it on every POST.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|authority| !host.is_empty() && authority.eq_ignore_ascii_case(host))
}

/// The `Set-Cookie` that opens a browser session.
pub fn set_cookie(token: &str, max_age: time::Duration, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={token}; Path={PATH}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.whole_seconds()
    );
    HeaderValue::from_str(&cookie).expect("a session token is a cookie value")
}

/// The answer that opens a browser session (signed in, or an invitation accepted): the cookie
/// holding `session_token`, and the way to `next` (the page that sent the browser to sign in)
/// if it is a dashboard page, else to the member's home page.
pub fn signed_in(
    state: &crate::state::AppState,
    session_token: &str,
    extensions: &axum::http::Extensions,
    next: &str,
) -> Response {
    let cookie = set_cookie(session_token, state.session_ttl, https(extensions));
    ([(header::SET_COOKIE, cookie)], Redirect::to(dashboard_page(next).unwrap_or(super::HOME))).into_response()
}

/// `path` if it is one of our dashboard's pages: a path under `/dashboard/` (so never another
/// site, nor a scheme), without control characters.
pub fn dashboard_page(path: &str) -> Option<&str> {
    let ours = path.starts_with("/dashboard/") && !path.chars().any(char::is_control);
    ours.then_some(path)
}

/// The sign-in page, coming back to the page `parts` asked for when it is one to come back to.
fn sign_in_redirect(parts: &Parts) -> Redirect {
    let wanted = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or_default();
    match dashboard_page(wanted).filter(|_| parts.method == axum::http::Method::GET) {
        Some(next) => {
            let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            Redirect::to(&format!("/dashboard/sign-in?next={next}"))
        }
        None => Redirect::to("/dashboard/sign-in"),
    }
}

/// The `Set-Cookie` that ends it in the browser.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("visa_session=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0")
}

impl FromRequestParts<SharedState> for Browser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Response> {
        let sign_in = sign_in_redirect(parts);
        let Some(token) = token(&parts.headers).map(str::to_owned) else { return Err(sign_in.into_response()) };
        let origin = Origin::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let session = match Session::of_session_token(state, &token, origin).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(sign_in.into_response()),
            Err(e) => return Err(e.into_response()),
        };
        Ok(Browser { session, csrf: csrf_token(&token) })
    }
}

/// Whether the request reached us over HTTPS (directly or via a trusted proxy).
pub fn https(parts: &axum::http::Extensions) -> bool {
    parts.get::<ViaHttps>().is_some_and(|v| v.0)
}
