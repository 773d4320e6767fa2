//! The `fal_queue` adapter: submit to a fal-style queue (`POST {base_url}/{app}` →
//! `request_id`), poll `.../requests/{id}/status` until `COMPLETED` (or a failure), then fetch
//! `.../requests/{id}`. The request id is stored (durably) as soon as the provider gives it, so a
//! retry with the same Idempotency-Key after a timeout resumes polling that request instead of
//! paying for a second one.

use super::upstream::Upstream;
use super::{ToolOutput, UpstreamFailure};
use crate::catalog::{ProviderSecret, Tool};
use axum::http::{Method, Uri};
use serde_json::Value;
use std::time::Duration;
use visa_core::money::Micros;
use visa_store::{ExecutionRecord, Store};

pub struct FalQueue<'a> {
    pub upstream: &'a Upstream,
    /// The tool being run: its headers carry the `Authorization: Key …` the queue expects.
    pub tool: &'a Tool,
    pub store: &'a dyn Store,
    pub base_url: &'a str,
    pub app: &'a str,
    pub per_output_image: bool,
    pub poll_interval: Duration,
}

impl FalQueue<'_> {
    /// `{base_url}/{app}{tail}`; the catalog checked `{base_url}/{app}`, but `tail` may carry
    /// the provider's request id.
    fn url(&self, tail: &str) -> Result<Uri, UpstreamFailure> {
        let url = format!("{}/{}{tail}", self.base_url.trim_end_matches('/'), self.app.trim_matches('/'));
        url.parse().map_err(|_| UpstreamFailure::retryable("the provider's request id does not fit in a URL"))
    }

    async fn send(&self, method: Method, tail: &str, json: Option<&Value>) -> Result<Value, UpstreamFailure> {
        let answer = self.upstream.send(method, &self.url(tail)?, &self.tool.headers, json).await?;
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if (200..300).contains(&answer.status) {
            return Ok(body);
        }
        let message = body["detail"].as_str().or_else(|| body["error"].as_str()).unwrap_or("no details");
        let message = visa_core::policy::truncate_for_message(message);
        let secret = self.tool.secret.as_ref().map(ProviderSecret::expose);
        Err(super::provider::classify(answer.status, &super::provider::scrub(&message, secret), answer.retry_after))
    }

    /// The provider request to follow: the one an earlier attempt left, or a new submission.
    async fn request_id(&self, execution: &ExecutionRecord, input: &Value) -> Result<String, UpstreamFailure> {
        let store_down = |_| UpstreamFailure::retryable("the store is unavailable");
        if let Some(existing) = self.store.provider_request_to_resume(execution.id).await.map_err(store_down)? {
            return Ok(existing);
        }
        let submitted = self.send(Method::POST, "", Some(input)).await?;
        let id = submitted["request_id"]
            .as_str()
            .ok_or_else(|| UpstreamFailure::retryable("the provider's answer had no request_id"))?
            .to_owned();
        self.store.remember_provider_request(execution.id, &id).await.map_err(store_down)?;
        Ok(id)
    }

    pub async fn run(
        &self,
        tool: &Tool,
        execution: &ExecutionRecord,
        input: &Value,
    ) -> Result<ToolOutput, UpstreamFailure> {
        let id = self.request_id(execution, input).await?;
        loop {
            let status = self.send(Method::GET, &format!("/requests/{id}/status"), None).await?;
            match status["status"].as_str() {
                Some("COMPLETED") => break,
                Some("IN_QUEUE" | "IN_PROGRESS") => tokio::time::sleep(self.poll_interval).await,
                other => {
                    // A failed generation is over: a retry must submit again, not resume it.
                    let _ = self.store.forget_provider_request(execution.id).await;
                    return Err(UpstreamFailure::retryable(format!(
                        "the provider's request ended as {}",
                        other.unwrap_or("an unknown status")
                    )));
                }
            }
        }
        let result = self.send(Method::GET, &format!("/requests/{id}"), None).await?;
        let _ = self.store.forget_provider_request(execution.id).await;
        let images = result["images"].as_array().map_or(0, Vec::len).max(1) as i64;
        let units = if self.per_output_image { images } else { 1 };
        let cost = tool.price.0.checked_mul(units).map(Micros).unwrap_or(tool.max_price);
        Ok(ToolOutput { result, cost })
    }
}
