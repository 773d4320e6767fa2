//! What only the operator does, as far as it is shared by the operator's use cases: an
//! operator request under an Idempotency-Key answers its first outcome.

use crate::error::ApiError;
use visa_core::ErrorCode;
use visa_store::StoreError;

/// A store error of an operator request under an Idempotency-Key: a key reused for another
/// request is 409 IDEMPOTENT_REPLAY.
pub fn operator_request_error(not_found: impl Fn(StoreError) -> ApiError) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::Conflict(message) => ApiError::new(ErrorCode::IdempotentReplay, message),
        other => not_found(other),
    }
}
