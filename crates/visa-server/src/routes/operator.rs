//! The operator's routes (`/v1/operator/...`, operator token): create accounts, approve
//! them, and credit their prepaid balance. A credit is a ledger entry, never a bare number.

use crate::app::operator::operator_request_error;
use crate::app::sessions::open_session;
use crate::auth::{Operator, password};
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::extract::JsonBody;
use crate::extract::idempotency_key_header;
use crate::state::SharedState;
use crate::wire::rfc3339;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;
use visa_core::fingerprint::request_fingerprint;
use visa_core::money::Micros;
use visa_core::policy::Login;
use visa_store::{Account, NewAccount, OperatorRequest, StoreError};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(create_account)).routes(routes!(update_account)).routes(routes!(credit_account))
}

/// The most one credit may add: $10M, far from any overflow.
const MAX_CREDIT_CENTS: i64 = 1_000_000_000;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: i64,
    pub login: String,
    pub approved: bool,
    pub balance_cents: i64,
    /// Exact balance in micros, as a decimal string.
    pub balance_micros: String,
    pub created_at: String,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.get(),
            login: a.login.clone(),
            approved: a.approved,
            balance_cents: a.balance.cents_floor(),
            balance_micros: a.balance.to_string(),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    #[schema(schema_with = crate::wire::schema::login)]
    pub login: String,
    /// Default false: keys of an unapproved account cannot execute tools.
    pub approved: Option<bool>,
    /// Opening credit in cents, default 0.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub credit_cents: Option<i64>,
    /// Optional; without one the account signs in only with the session token returned here.
    #[schema(schema_with = crate::wire::schema::password_or_null)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateAccountResponse {
    pub success: bool,
    pub account: AccountView,
    pub session_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountResponse {
    pub success: bool,
    pub account: AccountView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccountRequest {
    pub approved: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditRequest {
    /// Positive whole cents.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_cents: i64,
}

fn credit_micros(cents: i64, field: &str) -> ApiResult<Micros> {
    if !(0..=MAX_CREDIT_CENTS).contains(&cents) {
        return Err(ApiError::invalid(format!("{field} must be 0 to {MAX_CREDIT_CENTS}")));
    }
    Micros::from_cents(cents).ok_or_else(|| ApiError::invalid(format!("{field} is too large")))
}

fn account_not_found() -> impl Fn(StoreError) -> ApiError {
    not_found_as(ErrorCode::AccountNotFound, "no such account")
}

/// The operator's optional `Idempotency-Key` header, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct OperatorIdempotency {
    /// 1 to 255 printable ASCII characters; a retry under the same key answers the first outcome.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    _key: Option<String>,
}

/// The operator's optional `Idempotency-Key` (1 to 255 printable ASCII characters), with the
/// fingerprint of the request it guards: a retry of a credit or a reconcile whose answer was
/// lost answers the first outcome instead of acting twice.
pub fn operator_request(
    headers: &HeaderMap,
    what: &str,
    body: &serde_json::Value,
) -> ApiResult<Option<OperatorRequest>> {
    let Some(value) = idempotency_key_header(headers)? else { return Ok(None) };
    let key = Some(value)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::invalid("Idempotency-Key must be 1 to 255 printable ASCII characters"))?;
    let fingerprint = request_fingerprint("POST", what, body);
    Ok(Some(OperatorRequest { idempotency_key: key.to_owned(), fingerprint }))
}

#[utoipa::path(post, path = "/v1/operator/accounts", tag = "operator", request_body = CreateAccountRequest,
    responses((status = 201, body = CreateAccountResponse), (status = 409, body = crate::wire::ErrorBody)),
    security(("operator" = [])))]
pub async fn create_account(
    State(state): State<SharedState>,
    operator: Operator,
    JsonBody(req): JsonBody<CreateAccountRequest>,
) -> ApiResult<(StatusCode, Json<CreateAccountResponse>)> {
    let login = Login::parse(&req.login)?;
    let credit = credit_micros(req.credit_cents.unwrap_or(0), "credit_cents")?;
    let password_hash = match req.password {
        Some(p) => {
            password::validate(&p)?;
            Some(password::hash(p).await?)
        }
        None => None,
    };
    let new = NewAccount { login: login.into_string(), password_hash, approved: req.approved.unwrap_or(false), credit };
    let (account, owner) = state.store.create_account(new, operator.audit(&state)).await.map_err(|e| match e {
        StoreError::Conflict(message) => ApiError::new(ErrorCode::AccountExists, message),
        other => other.into(),
    })?;
    // The owner's first session, opened by (and audited as) the operator: the owner can list
    // and end it like any other (docs/security.md).
    let session = open_session(&state, &owner, operator.audit(&state)).await?;
    let session_token = session.session_token;
    tracing::info!(account = %account.login, approved = account.approved, "account created");
    let body = CreateAccountResponse { success: true, account: AccountView::from(&account), session_token };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(patch, path = "/v1/operator/accounts/{login}", tag = "operator", params(("login" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,38}$")),
    request_body = UpdateAccountRequest, responses((status = 200, body = AccountResponse), (status = 404, body = crate::wire::ErrorBody)),
    security(("operator" = [])))]
pub async fn update_account(
    State(state): State<SharedState>,
    operator: Operator,
    Path(login): Path<String>,
    JsonBody(req): JsonBody<UpdateAccountRequest>,
) -> ApiResult<Json<AccountResponse>> {
    let audit = operator.audit(&state);
    let account = state.store.set_account_approved(&login, req.approved, audit).await.map_err(account_not_found())?;
    state.keys.invalidate_account(account.id);
    tracing::info!(account = %account.login, approved = account.approved, "account approval changed");
    Ok(Json(AccountResponse { success: true, account: AccountView::from(&account) }))
}

#[utoipa::path(post, path = "/v1/operator/accounts/{login}/credits", tag = "operator",
    params(("login" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,38}$"), OperatorIdempotency),
    request_body = CreditRequest, responses((status = 200, body = AccountResponse), (status = 404, body = crate::wire::ErrorBody)),
    security(("operator" = [])))]
pub async fn credit_account(
    State(state): State<SharedState>,
    operator: Operator,
    Path(login): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreditRequest>,
) -> ApiResult<Json<AccountResponse>> {
    if req.amount_cents <= 0 {
        return Err(ApiError::invalid("amount_cents must be positive"));
    }
    let amount = credit_micros(req.amount_cents, "amount_cents")?;
    let request = operator_request(
        &headers,
        &format!("credit:{login}"),
        &serde_json::json!({ "amount_cents": req.amount_cents }),
    )?;
    let account = state
        .store
        .credit_account(&login, amount, operator.audit(&state), request)
        .await
        .map_err(operator_request_error(account_not_found()))?;
    tracing::info!(account = %account.login, amount_cents = req.amount_cents, "account credited");
    Ok(Json(AccountResponse { success: true, account: AccountView::from(&account) }))
}
