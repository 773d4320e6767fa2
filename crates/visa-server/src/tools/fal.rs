//! The `fal_queue` adapter: submit to a fal-style queue (`POST {base_url}/{app}` →
//! `request_id`), poll `.../requests/{id}/status` until `COMPLETED` (or a failure), then fetch
//! `.../requests/{id}`. A submission is recorded before it is sent and its request id stored
//! (durably) as soon as the provider gives it, even after the call timed out, so a retry with
//! the same Idempotency-Key resumes polling that request instead of paying for a second one.

use super::catalog::Tool;
use super::upstream::Upstream;
use super::{Plan, ToolOutput, UpstreamFailure};
use crate::error::ApiError;
use axum::http::{Method, Uri};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use visa_core::money::Micros;
use visa_store::{ExecutionRecord, ProviderRequest, Store};

/// The most a submission may take once sent, however short the tool's timeout: it runs to its
/// end in the background so that its request id is stored (see `FalQueue::run`).
const SUBMIT_BOUND: Duration = Duration::from_secs(600);

pub struct FalQueue<'a> {
    pub upstream: &'a Upstream,
    /// The tool being run: its headers carry the `Authorization: Key …` the queue expects.
    pub tool: &'a Arc<Tool>,
    pub store: &'a Arc<dyn Store>,
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
        super::provider::interpret(self.tool, &answer)
    }

    /// The provider request to follow: the one an earlier attempt left, or a new submission.
    ///
    /// A submission is recorded as under way before it is sent and runs in a task of its own,
    /// to its end (within `SUBMIT_BOUND`) even if this call's deadline passes first: the
    /// provider may accept it at any moment, and its request id must then be stored so that a
    /// retry resumes it. A retry that meets a submission still under way is answered
    /// "retry shortly" instead of submitting (and paying for) a second one.
    async fn request_id(
        &self,
        execution: &ExecutionRecord,
        input: &Value,
        deadline: tokio::time::Instant,
    ) -> Result<String, UpstreamFailure> {
        let store_down = |_| UpstreamFailure::retryable("the store is unavailable");
        match self.store.provider_request_to_resume(execution.id).await.map_err(store_down)? {
            Some(ProviderRequest::Submitted(existing)) => return Ok(existing),
            Some(ProviderRequest::Submitting) => {
                return Err(UpstreamFailure::retryable(
                    "an earlier attempt's submission of this request is still being accepted by the provider; retry shortly",
                ));
            }
            None => {}
        }
        self.store.start_provider_request(execution.id).await.map_err(store_down)?;
        let submission = Submission {
            upstream: self.upstream.clone(),
            tool: self.tool.clone(),
            store: self.store.clone(),
            url: self.url("")?,
            input: input.clone(),
            execution_id: execution.id,
        };
        let task = tokio::spawn(submission.run());
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(submitted)) => submitted,
            Ok(Err(_)) => Err(UpstreamFailure::retryable("the submission failed")),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> UpstreamFailure {
        UpstreamFailure::retryable(format!("the tool did not answer within {} ms", self.tool.timeout.as_millis()))
    }

    /// Submits (or resumes) and polls until `deadline`.
    pub async fn run(
        &self,
        execution: &ExecutionRecord,
        input: &Value,
        deadline: tokio::time::Instant,
    ) -> Result<ToolOutput, UpstreamFailure> {
        let id = self.request_id(execution, input, deadline).await?;
        tokio::time::timeout_at(deadline, self.follow(execution, &id)).await.unwrap_or_else(|_| Err(self.timed_out()))
    }

    /// Polls the provider request to its end and reads its result.
    async fn follow(&self, execution: &ExecutionRecord, id: &str) -> Result<ToolOutput, UpstreamFailure> {
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
        let units = match (self.per_output_image, result["images"].as_array()) {
            (false, _) => 1,
            (true, Some(images)) => images.len().max(1) as i64,
            (true, None) => {
                return Err(UpstreamFailure::unreadable(
                    "the provider's result has no images; nothing was charged, and this Idempotency-Key will not run \
                     again (use a new one to retry)",
                ));
            }
        };
        let cost = self.tool.price.0.checked_mul(units).map(Micros).unwrap_or(Micros(i64::MAX));
        Ok(ToolOutput { result, cost })
    }
}

/// A submission in flight, owning what it needs to finish after the call that sent it.
struct Submission {
    upstream: Upstream,
    tool: Arc<Tool>,
    store: Arc<dyn Store>,
    url: Uri,
    input: Value,
    execution_id: i64,
}

impl Submission {
    /// Sends it and stores the provider's request id; on failure, forgets that it was under way
    /// (nothing was accepted, so a retry submits again).
    async fn run(self) -> Result<String, UpstreamFailure> {
        let sent = tokio::time::timeout(
            SUBMIT_BOUND,
            self.upstream.send(Method::POST, &self.url, &self.tool.headers, Some(&self.input)),
        );
        let accepted = match sent.await {
            Ok(answer) => answer.and_then(|answer| super::provider::interpret(&self.tool, &answer)).and_then(|body| {
                body["request_id"].as_str().map(str::to_owned).ok_or_else(|| {
                    UpstreamFailure::unreadable("the provider's answer to the submission had no request_id")
                })
            }),
            Err(_) => Err(UpstreamFailure::retryable("the provider did not accept the submission in time")),
        };
        match &accepted {
            Ok(id) => {
                if let Err(e) = self.store.remember_provider_request(self.execution_id, id).await {
                    tracing::error!(error = %e, "a provider request id could not be stored; a retry may submit again");
                }
            }
            Err(_) => {
                let _ = self.store.forget_provider_request(self.execution_id).await;
            }
        }
        accepted
    }
}

/// The request and hold of a tool priced per output image: the count the caller asks for in
/// `count_field` (1 when absent, then sent explicitly so the provider cannot default to more),
/// refused when the tool's max price cannot pay for it.
pub fn plan_per_image(tool: &Tool, count_field: &str, mut input: Value) -> Result<Plan, ApiError> {
    let most = tool.max_price.0 / tool.price.0.max(1);
    let count = match input.get(count_field) {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid(format!("input.{count_field} must be a positive integer")))?,
    };
    if count > most as u64 {
        return Err(ApiError::invalid(format!(
            "input.{count_field} may be at most {most}: the tool's max price of {} micros pays for {most} at {} each",
            tool.max_price, tool.price
        )));
    }
    input[count_field] = count.into();
    Ok(Plan { hold: Micros(tool.price.0 * count as i64), request: input })
}
