//! A submitted dashboard form (urlencoded, fields may repeat: a checkbox per tool) and the
//! conversions from what people type (dollars, a UTC date and time, one CIDR per line) into
//! the API's request fields. The API's handler validates the result, so its messages are the
//! ones shown.

use crate::error::ApiError;
use axum::extract::{Form, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use visa_core::money::parse_dollars_to_cents;

pub struct Fields(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let Form(pairs) =
            Form::<Vec<(String, String)>>::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        Ok(Fields(pairs))
    }
}

impl Fields {
    /// The field's value, trimmed; `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// Every value of a repeated field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }

    /// Dollars (`5`, `0.50`) as cents; `None` when left empty.
    pub fn cents(&self, name: &str, what: &str) -> Result<Option<i64>, ApiError> {
        let text = self.get(name);
        if text.is_empty() {
            return Ok(None);
        }
        parse_dollars_to_cents(text.trim_start_matches('$'))
            .map(Some)
            .map_err(|e| ApiError::invalid(format!("{what}: {e}; write dollars, e.g. 5 or 12.50")))
    }

    /// A `datetime-local` value, read as UTC, in RFC 3339; `None` when left empty.
    pub fn utc_instant(&self, name: &str) -> Option<String> {
        let text = self.get(name);
        (!text.is_empty()).then(|| if text.len() == 16 { format!("{text}:00Z") } else { format!("{text}Z") })
    }

    /// One entry per line or comma.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name).split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    pub fn integer(&self, name: &str, what: &str) -> Result<Option<i64>, ApiError> {
        let text = self.get(name);
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| ApiError::invalid(format!("{what} must be a whole number")))
    }
}
