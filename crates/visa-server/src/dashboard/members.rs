//! Members: the account's members (`app::members::list`), inviting one with a role
//! (`invite`: the invitation token is shown once, with where to use it), changing a role
//! (`change_role`) and removing a member after a confirmation (`remove`); the last-owner and
//! owner-only rules are the store's, their refusals shown as the API words them. And the page
//! where an invitee accepts: the token and a password of their choosing (`accept`), which
//! signs them in. The token is typed or pasted, never carried in a URL.

use super::layout;
use super::session::{self, Browser, Submitted};
use crate::app;
use crate::auth::Origin;
use crate::state::SharedState;
use crate::wire::members::{
    AcceptInviteRequest, ChangeRoleRequest, InviteRequest, MEMBER_NOT_FOUND, MemberView, member_id,
};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use visa_core::role::{Permission, Role};

pub use super::paths::MEMBERS as PATH;
pub const ACCEPT: &str = "/dashboard/accept";

pub async fn list(State(state): State<SharedState>, browser: Browser) -> Response {
    let listed = match app::members::list(&state, &browser.session).await {
        Ok(listed) => listed,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let manage = browser.session.role.allows(Permission::ManageMembers);
    let body = html! {
        (table(&listed.members, &browser, manage))
        @if manage { (invite_form(&browser)) }
    };
    layout::page(&state, &browser, PATH, "Members", body).into_response()
}

fn role_options(current: Option<&str>) -> Markup {
    html! {
        @for role in Role::ALL {
            @if Some(role.as_str()) == current { option value=(role.as_str()) selected { (role.as_str()) } }
            @else { option value=(role.as_str()) { (role.as_str()) } }
        }
    }
}

fn table(list: &[MemberView], browser: &Browser, manage: bool) -> Markup {
    html! {
        table.members {
            caption { "Members of this account" }
            thead { tr {
                th scope="col" { "Login" } th scope="col" { "Role" } th scope="col" { "Status" } th scope="col" { "Since" }
                @if manage { th scope="col" { "Change role" } th scope="col" { "Remove" } }
            } }
            tbody {
                @for member in list {
                    tr {
                        td { (member.login) }
                        td { (member.role) }
                        td {
                            (member.status)
                            @if let Some(until) = &member.invite_expires_at { " (until " (layout::when(until)) ")" }
                        }
                        td { (layout::when(&member.created_at)) }
                        @if manage {
                            td {
                                form.inline method="post" action={ (PATH) "/" (member.id) "/role" } {
                                    input type="hidden" name="csrf" value=(browser.csrf);
                                    label for={ "role-" (member.id) } { "Role of " (member.login) }
                                    select id={ "role-" (member.id) } name="role" { (role_options(Some(&member.role))) }
                                    button type="submit" { "Change role" }
                                }
                            }
                            td { a.danger href={ (PATH) "/" (member.id) "/remove" } { "Remove " (member.login) "…" } }
                        }
                    }
                }
            }
        }
    }
}

fn invite_form(browser: &Browser) -> Markup {
    html! {
        h2 { "Invite a member" }
        form method="post" action=(PATH) {
            input type="hidden" name="csrf" value=(browser.csrf);
            label for="invite-login" { "Login" }
            input #invite-login name="login" type="text" required autocomplete="off";
            label for="invite-role" { "Role" }
            select #invite-role name="role" { (role_options(Some("developer"))) }
            button type="submit" { "Invite" }
        }
    }
}

pub async fn invite(State(state): State<SharedState>, Submitted { browser, fields }: Submitted) -> Response {
    let request = InviteRequest { login: fields.get("login").to_owned(), role: fields.get("role").to_owned() };
    let invited = match app::members::invite(&state, &browser.session, request).await {
        Ok(invited) => invited,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let body = html! {
        p.notice role="status" {
            strong { "Copy this invitation now: it is shown only once." }
            " Send it to " (invited.member.login) " privately. They open " code { (ACCEPT) } " on this server, paste it and choose a password."
            @if let Some(until) = &invited.member.invite_expires_at { " It works until " (layout::when(until)) "." }
        }
        label for="invite-token" { "Invitation for " (invited.member.login) " (" (invited.member.role) ")" }
        input #invite-token.raw-key type="text" readonly value=(invited.invite_token) size="64";
        button type="button" data-copy="invite-token" { "Copy invitation" }
        p { a href=(PATH) { "All members" } }
    };
    (StatusCode::CREATED, layout::page(&state, &browser, PATH, "Member invited", body)).into_response()
}

pub async fn change_role(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Submitted { browser, fields }: Submitted,
) -> Response {
    let request = ChangeRoleRequest { role: fields.get("role").to_owned() };
    match async { app::members::change_role(&state, &browser.session, member_id(&id)?, request).await }.await {
        Ok(_) => Redirect::to(PATH).into_response(),
        Err(e) => layout::refused(&state, &browser, PATH, e),
    }
}

pub async fn confirm_remove(State(state): State<SharedState>, browser: Browser, Path(id): Path<String>) -> Response {
    let listed = match app::members::list(&state, &browser.session).await {
        Ok(listed) => listed,
        Err(e) => return layout::refused(&state, &browser, PATH, e),
    };
    let Some(member) = listed.members.iter().find(|m| m.id.to_string() == id) else {
        let missing = crate::error::ApiError::new(visa_core::ErrorCode::MemberNotFound, MEMBER_NOT_FOUND);
        return layout::refused(&state, &browser, PATH, missing);
    };
    let message = html! {
        "Remove " strong { (member.login) } " (" (member.role) ")? Their sessions end at once; the keys they created stay."
    };
    let action = format!("{PATH}/{id}/remove");
    layout::confirm(&state, &browser, PATH, &format!("Remove {}?", member.login), message, &action, "Remove member")
}

pub async fn remove(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Submitted { browser, .. }: Submitted,
) -> Response {
    match async { app::members::remove(&state, &browser.session, member_id(&id)?).await }.await {
        Ok(_) => Redirect::to(PATH).into_response(),
        Err(e) => layout::refused(&state, &browser, PATH, e),
    }
}

#[derive(Deserialize)]
pub struct Accept {
    invite_token: String,
    password: String,
}

fn accept_page(state: &SharedState, error: Option<&str>) -> Markup {
    layout::bare(
        state,
        "Accept an invitation",
        html! {
            h1 { "Join an account on Visa Keys" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action=(ACCEPT) {
                label for="invite_token" { "Invitation" }
                input #invite_token name="invite_token" type="password" autocomplete="off" required;
                label for="new-password" { "Choose a password (" (visa_core::password::rule()) ")" }
                input #new-password name="password" type="password" autocomplete="new-password" required
                    minlength=(visa_core::password::MIN_PASSWORD_CHARS) maxlength=(visa_core::password::MAX_PASSWORD_CHARS);
                button type="submit" { "Accept invitation" }
            }
            p { a href="/dashboard/sign-in" { "Sign in instead" } }
        },
    )
}

pub async fn accept_form(State(state): State<SharedState>) -> Markup {
    accept_page(&state, None)
}

/// Accepting signs the new member in, as `POST /v1/api/members/accept` does.
pub async fn accept(
    State(state): State<SharedState>,
    origin: Origin,
    request_headers: HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<Accept>,
) -> Response {
    if !session::same_origin(&request_headers) {
        return (StatusCode::FORBIDDEN, accept_page(&state, Some("This form came from another site."))).into_response();
    }
    let request = AcceptInviteRequest { invite_token: form.invite_token, password: form.password };
    match app::sessions::accept_invite(&state, &origin, request).await {
        Ok(opened) => session::signed_in(&state, &opened.session_token, &extensions, ""),
        Err(e) => {
            let status = StatusCode::from_u16(e.0.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, accept_page(&state, Some(&e.0.message))).into_response()
        }
    }
}
