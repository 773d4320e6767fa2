//! A streamed chat completion written as the Responses API's typed events, as its chunks
//! arrive (`tools::stream::ChunkWriter`): `response.created` and `response.in_progress` first;
//! an output item added when its first text or tool call comes (`response.output_item.added`,
//! `response.content_part.added`), each piece as a delta (`response.output_text.delta`,
//! `response.function_call_arguments.delta`), the items done when the chunk with the finish
//! reason comes; and, once the call is settled, `response.completed` (or `.incomplete`) with
//! the whole response and its usage (`Writer::completed`).

use super::output::{self, Echo};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The stream's state: what was sent so far, and what the final response is made of.
#[derive(Default)]
struct State {
    sequence: u64,
    started: bool,
    /// How many output items were added (the next one's `output_index`).
    items: usize,
    /// The message item, once its first text came: its index and its text so far.
    message: Option<(usize, String)>,
    message_done: bool,
    /// Tool calls by their chat index: output index, call id, name, arguments so far.
    calls: BTreeMap<u64, (usize, String, String, String)>,
    calls_done: bool,
    finish_reason: Option<String>,
    usage: Value,
}

/// Writes one Responses API stream; `id` is the response's id without its `resp_` prefix.
pub struct Writer {
    id: String,
    model: String,
    created: i64,
    echo: Echo,
    state: Mutex<State>,
}

impl Writer {
    pub fn new(id: String, model: String, created: i64, echo: Echo) -> Self {
        Writer { id, model, created, echo, state: Mutex::default() }
    }

    /// The chat completion the chunks so far add up to (`output::response` makes the
    /// response of it).
    fn completion(&self, state: &State) -> Value {
        let mut message = json!({ "role": "assistant", "content": state.message.as_ref().map(|(_, text)| text) });
        if !state.calls.is_empty() {
            let calls: Vec<Value> = state
                .calls
                .values()
                .map(|(_, id, name, arguments)| json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } }))
                .collect();
            message["tool_calls"] = json!(calls);
        }
        json!({ "choices": [{ "finish_reason": state.finish_reason, "message": message }], "usage": state.usage })
    }

    fn response(&self, state: &State) -> Value {
        output::response(&self.completion(state), &self.id, &self.model, self.created, &self.echo)
    }

    /// The last event, once the call is settled: the whole response with its usage. Items left
    /// open (a stream cut before its finish) are closed first.
    pub fn completed(&self) -> Vec<Bytes> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut events = vec![];
        self.close_items(&mut state, &mut events);
        let response = self.response(&state);
        let kind = if response["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
        push(&mut state, &mut events, json!({ "type": kind, "response": response }));
        events
    }

    /// `response.output_text.done` … `response.output_item.done` for the message, then each tool
    /// call's, as far as they were not closed yet.
    fn close_items(&self, state: &mut State, events: &mut Vec<Bytes>) {
        let response = self.response(state);
        let items = response["output"].as_array().cloned().unwrap_or_default();
        if let (Some((index, text)), false) = (state.message.clone(), state.message_done) {
            state.message_done = true;
            let item = items.iter().find(|i| i["type"] == "message").cloned().unwrap_or_default();
            let at =
                |kind: &str| json!({ "type": kind, "item_id": item["id"], "output_index": index, "content_index": 0 });
            let mut done = at("response.output_text.done");
            done["text"] = json!(text);
            push(state, events, done);
            let mut part = at("response.content_part.done");
            part["part"] = item["content"][0].clone();
            push(state, events, part);
            push(state, events, json!({ "type": "response.output_item.done", "output_index": index, "item": item }));
        }
        if !state.calls_done {
            state.calls_done = true;
            let calls: Vec<_> = state.calls.values().cloned().collect();
            for (n, (index, _, _, arguments)) in calls.into_iter().enumerate() {
                let item = items.iter().filter(|i| i["type"] == "function_call").nth(n).cloned().unwrap_or_default();
                push(
                    state,
                    events,
                    json!({ "type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": index, "arguments": arguments }),
                );
                push(
                    state,
                    events,
                    json!({ "type": "response.output_item.done", "output_index": index, "item": item }),
                );
            }
        }
    }
}

/// Adds `event` with the stream's next sequence number, as a named server-sent event.
fn push(state: &mut State, events: &mut Vec<Bytes>, mut event: Value) {
    event["sequence_number"] = json!(state.sequence);
    state.sequence += 1;
    let mut bytes = format!("event: {}\n", event["type"].as_str().unwrap_or_default()).into_bytes();
    bytes.extend_from_slice(&crate::tools::stream::event(&serde_json::to_vec(&event).unwrap_or_default()));
    events.push(Bytes::from(bytes));
}

impl crate::tools::stream::ChunkWriter for Writer {
    fn events(&self, chunk: &Value) -> Vec<Bytes> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut events = vec![];
        if !state.started {
            state.started = true;
            let mut started = self.response(&state);
            started["status"] = json!("in_progress");
            started["usage"] = Value::Null;
            push(&mut state, &mut events, json!({ "type": "response.created", "response": started }));
            push(&mut state, &mut events, json!({ "type": "response.in_progress", "response": started }));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            state.usage = usage.clone();
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else { return events };
        let delta = &choice["delta"];
        let text =
            [&delta["content"], &delta["refusal"]].into_iter().find_map(|t| t.as_str().filter(|t| !t.is_empty()));
        if let Some(text) = text.filter(|_| !state.message_done) {
            let item_id = format!("msg_{}", self.id);
            let index = match &mut state.message {
                Some((index, so_far)) => {
                    so_far.push_str(text);
                    *index
                }
                None => {
                    let index = state.items;
                    state.items += 1;
                    state.message = Some((index, text.to_owned()));
                    let item = json!({ "type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": [] });
                    push(
                        &mut state,
                        &mut events,
                        json!({ "type": "response.output_item.added", "output_index": index, "item": item }),
                    );
                    let part = json!({ "type": "output_text", "text": "", "annotations": [], "logprobs": [] });
                    push(
                        &mut state,
                        &mut events,
                        json!({ "type": "response.content_part.added", "item_id": item_id, "output_index": index, "content_index": 0, "part": part }),
                    );
                    index
                }
            };
            push(
                &mut state,
                &mut events,
                json!({ "type": "response.output_text.delta", "item_id": item_id, "output_index": index, "content_index": 0, "delta": text, "logprobs": [] }),
            );
        }
        let calls = if state.calls_done { None } else { delta["tool_calls"].as_array() };
        for call in calls.into_iter().flatten() {
            let key = call["index"].as_u64().unwrap_or(0);
            let piece = call["function"]["arguments"].as_str().unwrap_or_default().to_owned();
            if !state.calls.contains_key(&key) {
                let (index, n) = (state.items, state.calls.len());
                state.items += 1;
                let (id, name) =
                    (call["id"].as_str().unwrap_or_default(), call["function"]["name"].as_str().unwrap_or_default());
                state.calls.insert(key, (index, id.to_owned(), name.to_owned(), String::new()));
                let item = json!({ "type": "function_call", "id": format!("fc_{}_{n}", self.id), "call_id": id, "name": name, "arguments": "", "status": "in_progress" });
                push(
                    &mut state,
                    &mut events,
                    json!({ "type": "response.output_item.added", "output_index": index, "item": item }),
                );
            }
            let n = state.calls.keys().position(|k| *k == key).unwrap_or(0);
            let Some((index, _, _, arguments)) = state.calls.get_mut(&key) else { continue };
            arguments.push_str(&piece);
            let index = *index;
            if !piece.is_empty() {
                push(
                    &mut state,
                    &mut events,
                    json!({ "type": "response.function_call_arguments.delta", "item_id": format!("fc_{}_{n}", self.id), "output_index": index, "delta": piece }),
                );
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            state.finish_reason = Some(reason.to_owned());
            self.close_items(&mut state, &mut events);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::stream::ChunkWriter;

    fn kinds(events: &[Bytes]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let text = String::from_utf8_lossy(e);
                let data: Value = serde_json::from_str(text.split("data: ").nth(1).unwrap().trim()).unwrap();
                data["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    /// Text in two pieces and a tool call in two: the events as they come, then completed with
    /// the whole response, numbered in order.
    #[test]
    fn chunks_become_the_responses_events_as_they_come() {
        let writer = Writer::new("x1".into(), "chat".into(), 7, Echo::default());
        let chunk = |delta: Value, finish: Value| json!({ "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
        let mut events = writer.events(&chunk(json!({ "role": "assistant" }), Value::Null));
        events.extend(writer.events(&chunk(json!({ "content": "hel" }), Value::Null)));
        events.extend(writer.events(&chunk(json!({ "content": "lo" }), Value::Null)));
        let call = json!({ "tool_calls": [{ "index": 0, "id": "call_1", "function": { "name": "look", "arguments": "{\"a\":" } }] });
        events.extend(writer.events(&chunk(call, Value::Null)));
        let more = json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "1}" } }] });
        events.extend(writer.events(&chunk(more, Value::Null)));
        events.extend(writer.events(&chunk(json!({}), json!("tool_calls"))));
        events
            .extend(writer.events(&json!({ "choices": [], "usage": { "prompt_tokens": 3, "completion_tokens": 4 } })));
        events.extend(writer.completed());
        assert_eq!(
            kinds(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let last = String::from_utf8_lossy(events.last().unwrap()).to_string();
        let completed: Value = serde_json::from_str(last.split("data: ").nth(1).unwrap().trim()).unwrap();
        assert_eq!(completed["sequence_number"], 14);
        let response = &completed["response"];
        assert_eq!(response["output"][0]["content"][0]["text"], "hello");
        assert_eq!(
            (&response["output"][1]["arguments"], &response["output"][1]["call_id"]),
            (&json!("{\"a\":1}"), &json!("call_1"))
        );
        assert_eq!((&response["usage"]["input_tokens"], &response["usage"]["output_tokens"]), (&json!(3), &json!(4)));
    }
}
