//! A chat completion as the Responses API's answer: its message as a `message` output item with
//! `output_text`, its tool calls as `function_call` items, its usage as input and output tokens,
//! `incomplete` when it stopped at the output limit; and the same answer as the typed events of
//! a streamed response (`response.created` … `response.completed`).

use serde_json::{Value, json};

/// What the answer repeats of the request, as OpenAI's does.
#[derive(Clone, Default)]
pub struct Echo {
    pub instructions: Value,
    pub metadata: Value,
    pub tools: Value,
    pub tool_choice: Value,
    pub temperature: Value,
    pub top_p: Value,
    pub max_output_tokens: Value,
    pub parallel_tool_calls: Value,
    pub text: Value,
}

impl Echo {
    pub fn of(request: &Value) -> Self {
        let or = |name: &str, default: Value| request.get(name).filter(|v| !v.is_null()).cloned().unwrap_or(default);
        Echo {
            instructions: or("instructions", Value::Null),
            metadata: or("metadata", json!({})),
            tools: or("tools", json!([])),
            tool_choice: or("tool_choice", json!("auto")),
            temperature: or("temperature", Value::Null),
            top_p: or("top_p", Value::Null),
            max_output_tokens: or("max_output_tokens", Value::Null),
            parallel_tool_calls: or("parallel_tool_calls", json!(true)),
            text: or("text", json!({ "format": { "type": "text" } })),
        }
    }
}

/// The response object for `completion` (a chat completion), named `id`, made at `created`.
pub fn response(completion: &Value, id: &str, model: &str, created: i64, echo: &Echo) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut output = vec![];
    if let Some(text) = message["content"].as_str() {
        output.push(json!({
            "type": "message", "id": format!("msg_{id}"), "status": "completed", "role": "assistant",
            "content": [{ "type": "output_text", "text": text, "annotations": [], "logprobs": [] }],
        }));
    }
    if let Some(refusal) = message["refusal"].as_str() {
        output.push(json!({
            "type": "message", "id": format!("msg_{id}_refusal"), "status": "completed", "role": "assistant",
            "content": [{ "type": "refusal", "refusal": refusal }],
        }));
    }
    for (n, call) in message["tool_calls"].as_array().into_iter().flatten().enumerate() {
        output.push(json!({
            "type": "function_call", "id": format!("fc_{id}_{n}"), "call_id": call["id"],
            "name": call["function"]["name"], "arguments": call["function"]["arguments"], "status": "completed",
        }));
    }
    let (status, incomplete) = match choice["finish_reason"].as_str() {
        Some("length") => ("incomplete", json!({ "reason": "max_output_tokens" })),
        Some("content_filter") => ("incomplete", json!({ "reason": "content_filter" })),
        _ => ("completed", Value::Null),
    };
    let usage = &completion["usage"];
    let (input, output_tokens) =
        (usage["prompt_tokens"].as_u64().unwrap_or(0), usage["completion_tokens"].as_u64().unwrap_or(0));
    let cached = usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
    let reasoning = usage["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0);
    json!({
        "id": format!("resp_{id}"),
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "store": false,
        "temperature": echo.temperature,
        "text": echo.text,
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "top_p": echo.top_p,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input,
            "input_tokens_details": { "cached_tokens": cached },
            "output_tokens": output_tokens,
            "output_tokens_details": { "reasoning_tokens": reasoning },
            "total_tokens": input + output_tokens,
        },
        "metadata": echo.metadata,
    })
}

/// The typed events of `response` streamed: created and in progress (no output yet), each
/// output item added, its text or arguments in one delta and done, the item done, completed.
pub fn events(response: &Value) -> Vec<Value> {
    let mut events = vec![];
    let mut push = |mut event: Value| {
        event["sequence_number"] = json!(events.len());
        events.push(event);
    };
    let mut started = response.clone();
    started["status"] = json!("in_progress");
    started["output"] = json!([]);
    started["usage"] = Value::Null;
    push(json!({ "type": "response.created", "response": started }));
    push(json!({ "type": "response.in_progress", "response": started }));
    for (index, item) in response["output"].as_array().into_iter().flatten().enumerate() {
        let id = &item["id"];
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        match item["type"].as_str() {
            Some("function_call") => {
                added["arguments"] = json!("");
                push(json!({ "type": "response.output_item.added", "output_index": index, "item": added }));
                let arguments = &item["arguments"];
                push(
                    json!({ "type": "response.function_call_arguments.delta", "item_id": id, "output_index": index, "delta": arguments }),
                );
                push(
                    json!({ "type": "response.function_call_arguments.done", "item_id": id, "output_index": index, "arguments": arguments }),
                );
            }
            _ => {
                added["content"] = json!([]);
                push(json!({ "type": "response.output_item.added", "output_index": index, "item": added }));
                for (part_index, part) in item["content"].as_array().into_iter().flatten().enumerate() {
                    let at = |kind: &str| json!({ "type": kind, "item_id": id, "output_index": index, "content_index": part_index });
                    let mut empty = part.clone();
                    let text_member = if part["type"] == "refusal" { "refusal" } else { "text" };
                    empty[text_member] = json!("");
                    let mut event = at("response.content_part.added");
                    event["part"] = empty;
                    push(event);
                    let (delta, done) = if text_member == "refusal" {
                        ("response.refusal.delta", "response.refusal.done")
                    } else {
                        ("response.output_text.delta", "response.output_text.done")
                    };
                    let mut event = at(delta);
                    event["delta"] = part[text_member].clone();
                    push(event);
                    let mut event = at(done);
                    event[text_member] = part[text_member].clone();
                    push(event);
                    let mut event = at("response.content_part.done");
                    event["part"] = part.clone();
                    push(event);
                }
            }
        }
        push(json!({ "type": "response.output_item.done", "output_index": index, "item": item }));
    }
    let kind = if response["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
    push(json!({ "type": kind, "response": response }));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_with_text_and_a_tool_call_is_a_response_and_its_events() {
        let completion = json!({
            "choices": [{ "finish_reason": "tool_calls", "message": { "role": "assistant", "content": "looking",
                "tool_calls": [{ "id": "call_1", "type": "function", "function": { "name": "look", "arguments": "{}" } }] } }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 },
        });
        let response = response(&completion, "x1", "chat", 7, &Echo::of(&json!({ "instructions": "hi" })));
        assert_eq!(
            (&response["id"], &response["status"], &response["instructions"]),
            (&json!("resp_x1"), &json!("completed"), &json!("hi"))
        );
        assert_eq!(
            response["output"][0]["content"][0],
            json!({ "type": "output_text", "text": "looking", "annotations": [], "logprobs": [] })
        );
        assert_eq!(response["output"][1]["call_id"], "call_1");
        assert_eq!((&response["usage"]["input_tokens"], &response["usage"]["total_tokens"]), (&json!(10), &json!(15)));
        let kinds: Vec<String> = events(&response).iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let cut = json!({ "choices": [{ "finish_reason": "length", "message": { "content": "abc" } }], "usage": {} });
        let cut = super::response(&cut, "x2", "chat", 7, &Echo::default());
        assert_eq!(
            (&cut["status"], &cut["incomplete_details"]["reason"]),
            (&json!("incomplete"), &json!("max_output_tokens"))
        );
    }
}
