//! A streamed chat completion on its way to the caller: every server-sent event forwarded is
//! also recorded, so the call's stored answer (replayed byte for byte for the same
//! Idempotency-Key) is exactly the stream the caller received.
//!
//! Nothing reaches the caller before the first *content* (a content or refusal token, a tool
//! call, a finish): events before it (the role chunk) are held back, so a provider that fails
//! before any content fails the call like a non-streamed one (an error status, nothing charged)
//! instead of a 200 already on the wire. "Content delivered" is tracked apart from "bytes
//! forwarded", and the text delivered is kept for the estimate a stream cut without a usage
//! report is charged (`tools::estimate`).
//!
//! The provider is read at its own pace and each event handed to an unbounded channel that the
//! caller's response drains: a slow reader never stalls the provider (which would run into the
//! tool's timeout), and what is buffered is bounded by the completion itself (the output limit
//! the hold pays for), which is recorded anyway. A caller that hangs up changes nothing here:
//! the provider is read to its end, its usage metered and the call settled.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// How a streamed call's charge was measured (the `metered` member of its `: visa` comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metered {
    /// The provider's final usage report.
    Usage,
    /// No report came (the stream was cut after content): the delivered prompt and output
    /// counted with the model family's tokenizer, never above the hold.
    Estimated,
}

impl Metered {
    pub fn as_str(self) -> &'static str {
        match self {
            Metered::Usage => "usage",
            Metered::Estimated => "estimated",
        }
    }
}

/// Writes a chat completion's chunks as the events of another API's stream (the Responses
/// API's, `openai::responses`): zero or more events per chunk, in order.
pub trait ChunkWriter: Send + Sync {
    fn events(&self, chunk: &serde_json::Value) -> Vec<Bytes>;
}

pub struct ChatStream {
    /// Whether the caller asked for the final usage chunk (`stream_options.include_usage`);
    /// the provider is always asked for it, so the call can be metered.
    pub include_usage: bool,
    /// The model name the caller used, written into every chunk.
    pub model: String,
    /// When the call began (Unix seconds), for chunks whose provider sent no `created`.
    pub created: i64,
    sender: UnboundedSender<Bytes>,
    recorded: Mutex<Vec<u8>>,
    /// Events held back until the first content (or the stream's successful end).
    held: Mutex<Vec<Bytes>>,
    content_delivered: AtomicBool,
    /// The output text delivered (content, refusals, tool calls), for an estimate.
    output_text: Mutex<String>,
    estimated: AtomicBool,
    /// How chunks reach the caller: as chat chunks (`None`), or as another API's events.
    writer: Option<Arc<dyn ChunkWriter>>,
}

impl ChatStream {
    pub fn new(include_usage: bool, model: String, created: i64, sender: UnboundedSender<Bytes>) -> Self {
        Self {
            include_usage,
            model,
            created,
            sender,
            recorded: Mutex::default(),
            held: Mutex::default(),
            content_delivered: AtomicBool::new(false),
            output_text: Mutex::default(),
            estimated: AtomicBool::new(false),
            writer: None,
        }
    }

    /// The same stream, its chunks written by `writer` instead of as chat chunks.
    pub fn with_writer(mut self, writer: Arc<dyn ChunkWriter>) -> Self {
        self.writer = Some(writer);
        self
    }

    /// A chat chunk's events as the caller reads them.
    fn written(&self, chunk: &serde_json::Value) -> Vec<Bytes> {
        match &self.writer {
            Some(writer) => writer.events(chunk),
            None => vec![event(&serde_json::to_vec(chunk).unwrap_or_default())],
        }
    }

    /// Passes a chat chunk on (`relay`), written as the caller reads it: `content` (its output
    /// text, if it carries any) counts once, with its first event.
    pub fn relay_chunk(&self, chunk: &serde_json::Value, content: Option<&str>) {
        let mut content = content;
        let events = self.written(chunk);
        if events.is_empty()
            && let Some(output) = content.take()
        {
            // Nothing to send for it (a writer keeping it for later): its text still counts.
            self.output_text.lock().unwrap_or_else(|e| e.into_inner()).push_str(output);
            self.content_delivered.store(true, Ordering::SeqCst);
        }
        for bytes in events {
            self.relay(bytes, content.take());
        }
    }

    /// Sends a chat chunk made here (a preview sample) at once, written as the caller reads it.
    pub fn forward_chunk(&self, chunk: &serde_json::Value) {
        for bytes in self.written(chunk) {
            self.forward(bytes);
        }
    }

    /// Sends one event (or any bytes of the stream) to the caller, and records it; anything
    /// held back goes first.
    pub fn forward(&self, bytes: Bytes) {
        self.release_held();
        self.send(bytes);
    }

    fn send(&self, bytes: Bytes) {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&bytes);
        // A caller that hung up no longer reads; the call goes on to be metered and settled.
        let _ = self.sender.send(bytes);
    }

    /// Passes a provider event on: at once if it carries content (`output` is its text) or
    /// content was delivered before, else held back until either happens.
    pub fn relay(&self, bytes: Bytes, content: Option<&str>) {
        if let Some(output) = content {
            self.output_text.lock().unwrap_or_else(|e| e.into_inner()).push_str(output);
            self.content_delivered.store(true, Ordering::SeqCst);
        }
        if self.content_delivered() {
            self.forward(bytes);
        } else {
            self.held.lock().unwrap_or_else(|e| e.into_inner()).push(bytes);
        }
    }

    /// Sends what was held back (the stream ended well without content: an empty answer).
    pub fn release_held(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        for bytes in held {
            self.send(bytes);
        }
    }

    /// Whether the caller got any content: from then on the call is billable (the provider
    /// worked, and the caller has part of the answer).
    pub fn content_delivered(&self) -> bool {
        self.content_delivered.load(Ordering::SeqCst)
    }

    /// How many bytes reached the caller so far.
    pub fn sent(&self) -> usize {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Everything sent so far.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The output text delivered so far.
    pub fn output_text(&self) -> String {
        self.output_text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The call is charged an estimate (no usage report came).
    pub fn charge_estimate(&self) {
        self.estimated.store(true, Ordering::SeqCst);
    }

    /// A chunk of this stream made here (a preview sample, a builtin's answer): `choices` under
    /// the caller's model name and the call's `created`.
    pub fn chunk(&self, id: &str, choices: serde_json::Value) -> serde_json::Value {
        serde_json::json!({ "id": id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": choices })
    }

    /// The usage chunk of an answer no provider billed (a preview sample, a builtin), when the
    /// caller asked for usage.
    pub fn no_usage_chunk(&self, id: &str) -> Option<serde_json::Value> {
        self.include_usage.then(|| {
            let mut chunk = self.chunk(id, serde_json::json!([]));
            chunk["usage"] = serde_json::json!({ "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 });
            chunk
        })
    }

    pub fn metered(&self) -> Metered {
        if self.estimated.load(Ordering::SeqCst) { Metered::Estimated } else { Metered::Usage }
    }
}

/// One server-sent event carrying `data`.
pub fn event(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_before_content_are_held_back_and_go_first_once_it_comes() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let stream = ChatStream::new(false, "m".into(), 0, sender);
        stream.relay(event(b"role"), None);
        assert!(receiver.try_recv().is_err() && stream.sent() == 0 && !stream.content_delivered());
        stream.relay(event(b"hello"), Some("hello"));
        assert_eq!(receiver.try_recv().unwrap(), event(b"role"));
        assert_eq!(receiver.try_recv().unwrap(), event(b"hello"));
        stream.relay(event(b"more"), None);
        assert_eq!(receiver.try_recv().unwrap(), event(b"more"), "after content nothing waits");
        assert_eq!((stream.output_text().as_str(), stream.metered()), ("hello", Metered::Usage));
    }
}
