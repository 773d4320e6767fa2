//! What a streamed chat call is charged when the provider cut it after delivering content but
//! before its usage report (docs/money.md): the prompt and the output the caller received,
//! counted with the model family's tokenizer (tiktoken's `o200k_base` for the GPT-4o, 4.1, 5 and
//! o-series families, `cl100k_base` for every other model, an approximation for non-OpenAI
//! models), priced at the tool's rates, at least its minimum and never above the hold.

use super::catalog::Tool;
use serde_json::Value;
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};
use visa_core::money::Micros;

/// OpenAI's accounting for chat: each message costs this many tokens beyond its text, and the
/// reply is primed with as many more.
const TOKENS_PER_MESSAGE: u64 = 3;

/// The tokenizer of `model` (a provider prefix such as `openai/` is ignored).
fn tokenizer(model: &str) -> &'static CoreBPE {
    let name = model.rsplit('/').next().unwrap_or(model);
    match get_tokenizer(name) {
        Some(Tokenizer::O200kBase | Tokenizer::O200kHarmony) => tiktoken_rs::o200k_base_singleton(),
        _ => tiktoken_rs::cl100k_base_singleton(),
    }
}

fn count(bpe: &CoreBPE, text: &str) -> u64 {
    bpe.count_with_special_tokens(text) as u64
}

/// Tokens of every string in `value` (an image part costs `image_tokens` instead of its URL).
fn value_tokens(bpe: &CoreBPE, value: &Value, image_tokens: u64) -> u64 {
    match value {
        Value::String(text) => count(bpe, text),
        Value::Array(items) => items.iter().map(|v| value_tokens(bpe, v, image_tokens)).sum(),
        Value::Object(members) if members.get("type").and_then(Value::as_str) == Some("image_url") => image_tokens,
        Value::Object(members) => members.values().map(|v| value_tokens(bpe, v, image_tokens)).sum(),
        _ => 0,
    }
}

/// The prompt of a chat request, in tokens: its messages (text, names, tool calls) and tool
/// definitions.
pub fn prompt_tokens(model: &str, request: &Value, image_tokens: u64) -> u64 {
    let bpe = tokenizer(model);
    let messages = request["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let per_message: u64 =
        messages.iter().map(|m| TOKENS_PER_MESSAGE + value_tokens(bpe, m, image_tokens)).sum::<u64>();
    let tools = request.get("tools").map_or(0, |t| count(bpe, &t.to_string()));
    per_message + tools + TOKENS_PER_MESSAGE
}

/// The estimated cost of a call whose caller received `output` (clamped to `hold`).
pub fn cost(tool: &Tool, model: &str, request: &Value, output: &str, hold: Micros) -> Micros {
    let Some(price) = tool.tokens else {
        return tool.price.min(hold);
    };
    let prompt = prompt_tokens(model, request, tool.image_input_tokens.unwrap_or(0));
    let completion = count(tokenizer(model), output);
    price.cost(prompt, completion).max(tool.price).min(hold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_counted_with_the_model_familys_tokenizer() {
        // "hello world" is two tokens in both encodings; the families differ on other text.
        assert_eq!(count(tokenizer("gpt-4o-mini"), "hello world"), 2);
        assert_eq!(count(tokenizer("openai/gpt-4o-mini"), "hello world"), 2);
        assert!(std::ptr::eq(tokenizer("openai/gpt-4o"), tiktoken_rs::o200k_base_singleton()));
        assert!(std::ptr::eq(tokenizer("gpt-4"), tiktoken_rs::cl100k_base_singleton()));
        assert!(std::ptr::eq(tokenizer("anthropic/claude-3.5"), tiktoken_rs::cl100k_base_singleton()));
        let request = json!({ "messages": [{ "role": "user", "content": "hello world" }] });
        // 3 per message + "user" (1) + "hello world" (2) + 3 priming.
        assert_eq!(prompt_tokens("gpt-4o", &request, 0), 9);
        let image = json!({ "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "hello world" },
            { "type": "image_url", "image_url": { "url": "https://example.invalid/a-long-url.png" } } ] }] });
        assert_eq!(prompt_tokens("gpt-4o", &image, 85), 9 + 1 + 85, "the part's type string counts, its URL does not");
    }
}
