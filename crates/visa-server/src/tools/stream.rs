//! A streamed chat completion on its way to the caller: every server-sent event forwarded is
//! also recorded, so the call's stored answer (replayed byte for byte for the same
//! Idempotency-Key) is exactly the stream the caller received.
//!
//! The provider is read at its own pace and each event handed to an unbounded channel that the
//! caller's response drains: a slow reader never stalls the provider (which would run into the
//! tool's timeout), and what is buffered is bounded by the completion itself (the output limit
//! the hold pays for), which is recorded anyway. A caller that hangs up changes nothing here:
//! the provider is read to its end, its usage metered and the call settled.

use bytes::Bytes;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::UnboundedSender;

pub struct ChatStream {
    /// Whether the caller asked for the final usage chunk (`stream_options.include_usage`);
    /// the provider is always asked for it, so the call can be metered.
    pub include_usage: bool,
    /// The model name the caller used, written into every chunk.
    pub model: String,
    sender: UnboundedSender<Bytes>,
    recorded: Mutex<Vec<u8>>,
    /// Set when the stream ended without a usage report and the call is charged its hold.
    charged_hold: AtomicBool,
}

impl ChatStream {
    pub fn new(include_usage: bool, model: String, sender: UnboundedSender<Bytes>) -> Self {
        Self { include_usage, model, sender, recorded: Mutex::default(), charged_hold: AtomicBool::new(false) }
    }

    /// Sends one event (or any bytes of the stream) to the caller, and records it.
    pub fn forward(&self, bytes: Bytes) {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&bytes);
        // A caller that hung up no longer reads; the call goes on to be metered and settled.
        let _ = self.sender.send(bytes);
    }

    /// Whether anything reached the caller (from then on the call is billable: the provider
    /// worked, and the caller has part of the answer).
    pub fn started(&self) -> bool {
        self.sent() > 0
    }

    /// How many bytes reached the caller so far.
    pub fn sent(&self) -> usize {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Everything sent so far.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn charge_hold(&self) {
        self.charged_hold.store(true, Ordering::SeqCst);
    }

    /// How the call was metered: `usage` (the provider's final report) or `hold` (none came).
    pub fn metered(&self) -> &'static str {
        if self.charged_hold.load(Ordering::SeqCst) { "hold" } else { "usage" }
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
