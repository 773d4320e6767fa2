//! Signing in and out. The form trades a member's login and password for an API session
//! (`app::sessions::authenticate` and `open_session`: the same throttles, timing and audit
//! entry as `POST /v1/api/sessions`) kept in the dashboard's cookie; signing out ends that
//! session on the server (`app::sessions::sign_out`), not only in the browser.

use super::layout;
use super::session::{self, Submitted};
use crate::app::sessions;
use crate::auth::Origin;
use crate::error::ApiError;
use crate::state::SharedState;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use visa_core::ErrorCode;
use visa_store::Actor;

#[derive(Deserialize)]
pub struct SignIn {
    login: String,
    password: String,
    /// The dashboard page to go back to (an OAuth consent, a link followed while signed out).
    #[serde(default)]
    next: String,
}

/// The sign-in page's query: where to go once signed in.
#[derive(Deserialize)]
pub struct Next {
    #[serde(default)]
    next: String,
}

fn sign_in_page(state: &SharedState, login: &str, next: &str, error: Option<&str>) -> Markup {
    layout::bare(
        state,
        "Sign in",
        html! {
            h1 { "Sign in to Visa Keys" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/dashboard/sign-in" {
                label for="login" { "Login" }
                input #login name="login" type="text" autocomplete="username" required value=(login);
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password" required;
                @if let Some(next) = session::dashboard_page(next) { input type="hidden" name="next" value=(next); }
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub async fn form(State(state): State<SharedState>, Query(Next { next }): Query<Next>) -> Markup {
    sign_in_page(&state, "", &next, None)
}

pub async fn submit(
    State(state): State<SharedState>,
    origin: Origin,
    request_headers: HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<SignIn>,
) -> Response {
    let refused =
        |status: StatusCode, message: &str| (status, sign_in_page(&state, &form.login, &form.next, Some(message)));
    if !session::same_origin(&request_headers) {
        return refused(StatusCode::FORBIDDEN, "This form came from another site.").into_response();
    }
    let member = match sessions::authenticate(&state, &origin, &form.login, form.password.clone()).await {
        Ok(member) => member,
        Err(ApiError(e)) if e.code == ErrorCode::AuthInvalid => {
            return refused(StatusCode::UNAUTHORIZED, "Wrong login or password.").into_response();
        }
        Err(ApiError(e)) => {
            let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return refused(status, &e.message).into_response();
        }
    };
    let audit = origin.audit(Actor::Member { id: member.id, login: member.login.clone() }, state.now());
    let opened = match sessions::open_session(&state, &member, audit).await {
        Ok(opened) => opened,
        Err(e) => return e.into_response(),
    };
    session::signed_in(&state, &opened.session_token, &extensions, &form.next)
}

pub async fn sign_out(State(state): State<SharedState>, Submitted { browser, .. }: Submitted) -> Response {
    if let Err(e) = sessions::sign_out(&state, &browser.session).await {
        return e.into_response();
    }
    ([(header::SET_COOKIE, session::clear_cookie())], Redirect::to("/dashboard/sign-in")).into_response()
}
