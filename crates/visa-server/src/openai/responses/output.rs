//! A chat completion as the Responses API's answer: its message as a `message` output item with
//! `output_text`, its tool calls as `function_call` items, its usage as input and output tokens,
//! `incomplete` when it stopped at the output limit (a stream's events are `events.rs`).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_with_text_and_a_tool_call_is_a_response() {
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
        let cut = json!({ "choices": [{ "finish_reason": "length", "message": { "content": "abc" } }], "usage": {} });
        let cut = super::response(&cut, "x2", "chat", 7, &Echo::default());
        assert_eq!(
            (&cut["status"], &cut["incomplete_details"]["reason"]),
            (&json!("incomplete"), &json!("max_output_tokens"))
        );
    }
}
