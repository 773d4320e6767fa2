//! A Responses API request as the chat completion request that an `openai_chat` tool serves:
//! `instructions` become the system message, `input` (a string, or messages, function calls and
//! their outputs) the messages, function `tools` and `tool_choice` chat's, `max_output_tokens`
//! the output limit the hold is made from, `text.format` the `response_format`. What needs
//! state kept between calls (`previous_response_id`, `conversation`, stored prompts) or a tool
//! run by OpenAI itself (web search, file search, …) is refused with a clear 400: nothing is
//! held or sent. Settings that change nothing a chat provider does (`store`, `include`,
//! `truncation`, caching hints) are accepted and have no effect.

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value, json};
use visa_core::policy::truncate_for_message;

/// Members taken over as they are.
const SAME: &[&str] = &["model", "temperature", "top_p", "parallel_tool_calls", "metadata"];
/// Members accepted that change nothing here.
const IGNORED: &[&str] = &[
    "stream",
    "store",
    "include",
    "truncation",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "safety_identifier",
    "service_tier",
    "context_management",
    "stream_options",
];
/// Members that need what only OpenAI's own service keeps.
const STATEFUL: &[&str] = &["previous_response_id", "conversation", "prompt"];

/// The chat completion request for `request` (a Responses API body, `user` already taken off).
pub fn chat_request(request: &Value) -> ApiResult<Value> {
    let Value::Object(fields) = request else {
        return Err(ApiError::invalid("the body must be a JSON object"));
    };
    let mut chat = Map::new();
    let mut messages = vec![];
    for (name, value) in fields {
        let name = name.as_str();
        if value.is_null() {
            continue;
        }
        match name {
            _ if SAME.contains(&name) => drop(chat.insert(name.to_owned(), value.clone())),
            _ if IGNORED.contains(&name) => {}
            "background" if value != &json!(false) => return Err(unsupported("background")),
            "background" => {}
            _ if STATEFUL.contains(&name) => {
                return Err(ApiError::invalid(format!(
                    "{name} is not supported: Visa Keys keeps no conversation state; send the whole input each time"
                )));
            }
            "instructions" => match value {
                Value::String(text) => messages.insert(0, json!({ "role": "system", "content": text })),
                _ => return Err(ApiError::invalid("instructions must be a string")),
            },
            "input" => {}
            "max_output_tokens" => drop(chat.insert("max_tokens".into(), value.clone())),
            // Chat completions take `top_logprobs` only with `logprobs` on.
            "top_logprobs" => {
                chat.insert("top_logprobs".into(), value.clone());
                chat.insert("logprobs".into(), Value::Bool(true));
            }
            "tools" => drop(chat.insert("tools".into(), tools(value)?)),
            "tool_choice" => drop(chat.insert("tool_choice".into(), tool_choice(value)?)),
            "text" => text(value, &mut chat)?,
            "reasoning" => {
                // `none` (the Agents SDK's default) is a chat model's own behaviour: nothing to send.
                if let Some(effort) = value["effort"].as_str().filter(|e| *e != "none") {
                    chat.insert("reasoning_effort".into(), json!(effort));
                }
            }
            other => return Err(unsupported(other)),
        }
    }
    match fields.get("input") {
        Some(Value::String(text)) => messages.push(json!({ "role": "user", "content": text })),
        Some(Value::Array(items)) => input_items(items, &mut messages)?,
        _ => return Err(ApiError::invalid("input must be a string or an array of input items")),
    }
    chat.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(chat))
}

fn unsupported(member: &str) -> ApiError {
    ApiError::invalid(format!("{} is not supported on /v1/openai/responses", truncate_for_message(member)))
}

/// Input items as chat messages: messages (their text and image parts), an assistant's
/// function calls (consecutive ones in one assistant message, as chat has them) and their
/// outputs as tool messages.
fn input_items(items: &[Value], messages: &mut Vec<Value>) -> ApiResult<()> {
    for item in items {
        let kind = item["type"].as_str().unwrap_or(if item.get("role").is_some() { "message" } else { "" });
        match kind {
            "message" => {
                let role = match item["role"].as_str() {
                    Some(role @ ("user" | "assistant" | "system")) => role,
                    Some("developer") => "system",
                    _ => {
                        return Err(ApiError::invalid(
                            "an input message's role must be user, assistant, system or developer",
                        ));
                    }
                };
                messages.push(json!({ "role": role, "content": content(&item["content"])? }));
            }
            "function_call" => {
                let call = json!({
                    "id": item["call_id"], "type": "function",
                    "function": { "name": item["name"], "arguments": item["arguments"] },
                });
                let previous =
                    messages.last_mut().filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some());
                match previous.and_then(|m| m["tool_calls"].as_array_mut()) {
                    Some(calls) => calls.push(call),
                    None => messages.push(json!({ "role": "assistant", "content": null, "tool_calls": [call] })),
                }
            }
            "function_call_output" => {
                let output = match &item["output"] {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                messages.push(json!({ "role": "tool", "tool_call_id": item["call_id"], "content": output }));
            }
            // A reasoning item of an earlier answer: chat models keep no reasoning between calls.
            "reasoning" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "input items of type {} are not supported (message, function_call and function_call_output are)",
                    truncate_for_message(other)
                )));
            }
        }
    }
    Ok(())
}

/// A message's content: a string, or parts (text and images) as chat's parts.
fn content(content: &Value) -> ApiResult<Value> {
    let Value::Array(parts) = content else {
        return match content {
            Value::String(_) => Ok(content.clone()),
            _ => Err(ApiError::invalid("a message's content must be a string or an array of content parts")),
        };
    };
    parts
        .iter()
        .map(|part| match part["type"].as_str() {
            Some("input_text" | "output_text" | "text") => Ok(json!({ "type": "text", "text": part["text"] })),
            Some("input_image") => {
                let url = part["image_url"].as_str().ok_or_else(|| {
                    ApiError::invalid("an input_image needs image_url (a URL or a data: URL; file_id is not supported)")
                })?;
                let mut image = json!({ "url": url });
                if let Some(detail) = part["detail"].as_str() {
                    image["detail"] = json!(detail);
                }
                Ok(json!({ "type": "image_url", "image_url": image }))
            }
            Some("refusal") => Ok(json!({ "type": "text", "text": part["refusal"] })),
            other => Err(ApiError::invalid(format!(
                "content parts of type {} are not supported (input_text and input_image are)",
                truncate_for_message(other.unwrap_or("(none)"))
            ))),
        })
        .collect()
}

/// Function tools as chat's; any other kind of tool is OpenAI's own, not a provider's.
fn tools(tools: &Value) -> ApiResult<Value> {
    let Value::Array(tools) = tools else {
        return Err(ApiError::invalid("tools must be an array"));
    };
    tools
        .iter()
        .map(|tool| match tool["type"].as_str() {
            Some("function") => {
                let mut function = json!({ "name": tool["name"], "parameters": tool["parameters"] });
                for optional in ["description", "strict"] {
                    if let Some(value) = tool.get(optional).filter(|v| !v.is_null()) {
                        function[optional] = value.clone();
                    }
                }
                Ok(json!({ "type": "function", "function": function }))
            }
            other => Err(ApiError::invalid(format!(
                "tools of type {} are not supported: only function tools, which your code runs",
                truncate_for_message(other.unwrap_or("(none)"))
            ))),
        })
        .collect()
}

fn tool_choice(choice: &Value) -> ApiResult<Value> {
    match choice {
        Value::String(_) => Ok(choice.clone()),
        _ if choice["type"] == "function" => Ok(json!({ "type": "function", "function": { "name": choice["name"] } })),
        _ => Err(ApiError::invalid("tool_choice must be auto, none, required or a function")),
    }
}

/// `text`: its format as chat's `response_format`, its verbosity as chat's.
fn text(text: &Value, chat: &mut Map<String, Value>) -> ApiResult<()> {
    if let Some(verbosity) = text.get("verbosity").filter(|v| !v.is_null()) {
        chat.insert("verbosity".into(), verbosity.clone());
    }
    let format = &text["format"];
    match format["type"].as_str() {
        None | Some("text") => {}
        Some("json_object") => drop(chat.insert("response_format".into(), json!({ "type": "json_object" }))),
        Some("json_schema") => {
            let mut schema = json!({ "name": format["name"], "schema": format["schema"] });
            for optional in ["description", "strict"] {
                if let Some(value) = format.get(optional).filter(|v| !v.is_null()) {
                    schema[optional] = value.clone();
                }
            }
            chat.insert("response_format".into(), json!({ "type": "json_schema", "json_schema": schema }));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!("text.format {} is not supported", truncate_for_message(other))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_responses_request_becomes_the_chat_request_it_stands_for() {
        let request = json!({
            "model": "chat", "instructions": "be brief", "max_output_tokens": 50, "store": false, "include": [],
            "top_logprobs": 2,
            "reasoning": { "effort": "none" }, "text": { "verbosity": "low" },
            "input": [
                { "role": "user", "content": [{ "type": "input_text", "text": "what is on this?" },
                    { "type": "input_image", "image_url": "data:image/png;base64,AAAA" }] },
                { "type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}" },
                { "type": "function_call", "call_id": "c2", "name": "look", "arguments": "{\"x\":1}" },
                { "type": "function_call_output", "call_id": "c1", "output": "a cat" },
            ],
            "tools": [{ "type": "function", "name": "look", "parameters": { "type": "object" }, "strict": true }],
            "tool_choice": { "type": "function", "name": "look" },
        });
        let chat = chat_request(&request).unwrap();
        assert_eq!(
            chat,
            json!({
                "model": "chat", "max_tokens": 50, "verbosity": "low", "top_logprobs": 2, "logprobs": true,
                "tools": [{ "type": "function", "function": { "name": "look", "parameters": { "type": "object" }, "strict": true } }],
                "tool_choice": { "type": "function", "function": { "name": "look" } },
                "messages": [
                    { "role": "system", "content": "be brief" },
                    { "role": "user", "content": [{ "type": "text", "text": "what is on this?" },
                        { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } }] },
                    { "role": "assistant", "content": null, "tool_calls": [
                        { "id": "c1", "type": "function", "function": { "name": "look", "arguments": "{}" } },
                        { "id": "c2", "type": "function", "function": { "name": "look", "arguments": "{\"x\":1}" } }] },
                    { "role": "tool", "tool_call_id": "c1", "content": "a cat" },
                ],
            })
        );
        for (member, value) in [
            ("previous_response_id", json!("resp_1")),
            ("tools", json!([{ "type": "web_search" }])),
            ("input", json!([{ "type": "file_search_call" }])),
            ("frobnicate", json!(1)),
        ] {
            let mut bad = json!({ "model": "chat", "input": "hi" });
            bad[member] = value;
            assert!(chat_request(&bad).is_err(), "{member}");
        }
    }
}
