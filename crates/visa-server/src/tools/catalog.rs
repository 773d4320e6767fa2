//! The tool catalog: which paid tools exist, what they cost, how long they may run and
//! which adapter runs them. Loaded from TOML (`--config FILE`, or the built-in default) and
//! validated at start, so a bad catalog stops the server with a message naming the tool
//! and the field instead of failing a paying request later.

use crate::tools::upstream;
use axum::http::{HeaderName, HeaderValue, Uri, header};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use visa_core::money::Micros;

pub const DEFAULT_CATALOG: &str = include_str!("default_catalog.toml");
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    tools: Vec<ToolSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolSpec {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    description: String,
    price_micros: i64,
    max_price_micros: Option<i64>,
    /// Token metering (openai_chat only): micros per million input / output tokens.
    input_micros_per_mtok: Option<i64>,
    output_micros_per_mtok: Option<i64>,
    /// openai_chat only: tokens one image input may cost (images are refused without it).
    image_input_tokens: Option<u64>,
    /// openai_chat only: the output limit per choice sent when the caller sets none.
    max_output_tokens: Option<u64>,
    timeout_ms: Option<u64>,
    sandbox: Option<toml::Value>,
    /// openai_chat and openai_embeddings only: send the call's end user upstream as OpenAI's
    /// `user` (for providers that use it to monitor abuse); by default it is never sent.
    #[serde(default)]
    pass_end_user: bool,
    adapter: AdapterSpec,
}

fn default_poll_interval_ms() -> u64 {
    500
}

fn default_count_field() -> String {
    "num_images".into()
}

/// The output limit per choice a chat call gets when neither the caller nor the catalog sets one.
const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 16_384;

/// How a tool is run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdapterSpec {
    Builtin {
        name: Builtin,
    },
    OpenaiChat {
        base_url: String,
        model: String,
        api_key_env: String,
    },
    /// OpenAI's embeddings API (`{base_url}/embeddings`), metered by the input tokens the
    /// provider reports (`input_micros_per_mtok`; `price_micros` is the minimum).
    OpenaiEmbeddings {
        base_url: String,
        model: String,
        api_key_env: String,
    },
    FalQueue {
        base_url: String,
        app: String,
        api_key_env: String,
        /// Charge `price_micros` per image in the result's `images` (at least one).
        #[serde(default)]
        per_output_image: bool,
        /// With `per_output_image`: the input field that asks for a number of images (default
        /// `num_images`, 1 when absent); a number the tool's `max_price_micros` cannot pay for
        /// is refused before anything is submitted.
        #[serde(default = "default_count_field")]
        count_field: String,
        /// How often the request's status is polled.
        #[serde(default = "default_poll_interval_ms")]
        poll_interval_ms: u64,
    },
    /// POSTs the input as JSON to `url`; the JSON answer is the result.
    Http {
        url: String,
        /// Fixed, non-secret headers.
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
        /// Sent as `Authorization: Bearer <value of this variable>` when set.
        api_key_env: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    Echo,
    Sleep,
    Fail,
    /// A chat model that needs no provider: it answers the last user message back.
    EchoChat,
}

impl AdapterSpec {
    /// Whether the tool answers chat completions (the OpenAI surface's models).
    pub fn is_chat(&self) -> bool {
        matches!(self, Self::OpenaiChat { .. } | Self::Builtin { name: Builtin::EchoChat })
    }

    /// Whether the tool answers embeddings requests (the OpenAI surface's embedding models).
    pub fn is_embeddings(&self) -> bool {
        matches!(self, Self::OpenaiEmbeddings { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Builtin { .. } => "builtin",
            Self::OpenaiChat { .. } => "openai_chat",
            Self::OpenaiEmbeddings { .. } => "openai_embeddings",
            Self::FalQueue { .. } => "fal_queue",
            Self::Http { .. } => "http",
        }
    }

    /// The JSON Schema of a call's input, as MCP's `tools/list` states it: what the adapter
    /// reads (a chat's `messages`, an image's `prompt`, the `sleep` builtin's `ms`), any object
    /// where it passes the input on as it is.
    pub fn input_schema(&self) -> serde_json::Value {
        match self {
            Self::OpenaiChat { .. } | Self::Builtin { name: Builtin::EchoChat } => serde_json::json!({
                "type": "object",
                "properties": {
                    "messages": { "type": "array", "items": { "type": "object" }, "description": "The conversation, as OpenAI's chat completions take it" },
                    "max_tokens": { "type": "integer", "minimum": 1 }
                },
                "required": ["messages"]
            }),
            Self::OpenaiEmbeddings { .. } => serde_json::json!({
                "type": "object",
                "properties": {
                    "input": {
                        "description": "Text to embed: a string or an array of strings (or of token arrays)",
                        "anyOf": [{ "type": "string" }, { "type": "array" }]
                    }
                },
                "required": ["input"]
            }),
            Self::FalQueue { .. } => serde_json::json!({
                "type": "object",
                "properties": {
                    "prompt": { "type": "string" },
                    "num_images": { "type": "integer", "minimum": 1 }
                },
                "required": ["prompt"]
            }),
            Self::Builtin { name: Builtin::Sleep } => serde_json::json!({
                "type": "object",
                "properties": { "ms": { "type": "integer", "minimum": 0 } }
            }),
            Self::Builtin { .. } | Self::Http { .. } => serde_json::json!({ "type": "object" }),
        }
    }

    /// The environment variable holding the provider secret, if the adapter needs one.
    pub fn secret_env(&self) -> Option<&str> {
        match self {
            Self::Builtin { .. } => None,
            Self::OpenaiChat { api_key_env, .. }
            | Self::OpenaiEmbeddings { api_key_env, .. }
            | Self::FalQueue { api_key_env, .. } => Some(api_key_env),
            Self::Http { api_key_env, .. } => api_key_env.as_deref(),
        }
    }
}

/// A validated catalog entry.
#[derive(Debug, Clone)]
pub struct Tool {
    pub id: String,
    pub aliases: Vec<String>,
    pub description: String,
    /// What one call costs; for token-metered tools, the minimum charge.
    pub price: Micros,
    /// Per-token prices, when the tool is metered by the provider's reported usage.
    pub tokens: Option<TokenPrice>,
    /// Tokens one image input may cost (chat tools); `None`: images are refused.
    pub image_input_tokens: Option<u64>,
    /// The output limit per choice sent when the caller sets none (chat tools).
    pub max_output_tokens: u64,
    /// The most one call can cost: the hold placed before it runs.
    pub max_price: Micros,
    pub timeout: Duration,
    /// The deterministic answer given in the preview environment.
    pub sandbox: Option<Value>,
    /// Whether the call's end user goes upstream as OpenAI's `user`.
    pub pass_end_user: bool,
    pub adapter: AdapterSpec,
    /// The URL each call POSTs to (`openai_chat`: `{base_url}/chat/completions`; `http`: its
    /// `url`), parsed once at start rather than on every paid call.
    pub endpoint: Option<Uri>,
    /// The provider secret, read once from the variable the adapter names when the catalog
    /// loads (a process's environment cannot change from outside it).
    pub secret: Option<ProviderSecret>,
    /// Sent with every provider request: the `http` adapter's fixed headers and the
    /// `Authorization` the adapter builds from the secret (marked sensitive).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Tool {
    /// Whether the provider secret the adapter needs is set.
    pub fn is_ready(&self) -> bool {
        self.adapter.secret_env().is_none() || self.secret.is_some()
    }

    /// Whether a call answers: in preview (`sandbox`) every tool does (from its sample, no
    /// provider called); in production only a tool whose provider secret is set.
    pub fn answers(&self, sandbox: bool) -> bool {
        sandbox || self.is_ready()
    }
}

/// A provider secret (from the environment variable the catalog names). Never printed: `Debug`
/// shows `[redacted]`.
#[derive(Clone)]
pub struct ProviderSecret(String);

impl ProviderSecret {
    /// `value`, if it is something that can be sent in a header.
    fn parse(value: String) -> Option<Self> {
        Some(value).filter(|v| !v.is_empty() && HeaderValue::from_str(v).is_ok()).map(Self)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Micros per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPrice {
    pub input_micros_per_mtok: i64,
    pub output_micros_per_mtok: i64,
}

impl TokenPrice {
    /// The price of a call, rounded up to the micro.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> Micros {
        let per_million = i128::from(input_tokens) * i128::from(self.input_micros_per_mtok)
            + i128::from(output_tokens) * i128::from(self.output_micros_per_mtok);
        let micros = (per_million + 999_999) / 1_000_000;
        Micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// The most output tokens per choice, for `choices` choices after `input_tokens` of
    /// prompt, that keep `cost` within `max`: 0 when the prompt alone does not fit.
    pub fn affordable_output(&self, input_tokens: u64, choices: u64, max: Micros) -> u64 {
        let budget = i128::from(max.0) * 1_000_000 - i128::from(input_tokens) * i128::from(self.input_micros_per_mtok);
        let per_token = i128::from(choices.max(1)) * i128::from(self.output_micros_per_mtok);
        match (budget, per_token) {
            (b, _) if b < 0 => 0,
            (_, 0) => u64::MAX,
            (b, p) => u64::try_from(b / p).unwrap_or(u64::MAX),
        }
    }
}

/// All tools, addressable by id or alias.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Shared, so a paid call holds its tool for the whole run without copying it.
    tools: Vec<std::sync::Arc<Tool>>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// The catalog in `text`, each provider secret read from the environment variable it names.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        Self::from_toml_with_secrets(text, |var| std::env::var(var).ok())
    }

    /// The catalog in `text`, each provider secret looked up by the variable name it names in
    /// `secret_of` (the environment for `from_toml`; a test or an embedder passes its own, so no
    /// one writes the process environment while other threads may read it).
    pub fn from_toml_with_secrets(text: &str, secret_of: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| format!("tool catalog: {e}"))?;
        let mut catalog = Catalog { tools: Vec::new(), by_name: HashMap::new() };
        for spec in file.tools {
            let tool = validate(spec, &secret_of)?;
            let index = catalog.tools.len();
            for name in std::iter::once(&tool.id).chain(&tool.aliases) {
                if catalog.by_name.insert(name.clone(), index).is_some() {
                    return Err(format!("tool catalog: tool '{}': the id or alias '{name}' is used twice", tool.id));
                }
            }
            catalog.tools.push(std::sync::Arc::new(tool));
        }
        Ok(catalog)
    }

    pub fn default_catalog() -> Self {
        Self::from_toml(DEFAULT_CATALOG).expect("the built-in catalog is valid")
    }

    /// Finds a tool by canonical id or alias.
    pub fn resolve(&self, name: &str) -> Option<&std::sync::Arc<Tool>> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    pub fn tools(&self) -> &[std::sync::Arc<Tool>] {
        &self.tools
    }
}

fn validate(spec: ToolSpec, secret_of: &dyn Fn(&str) -> Option<String>) -> Result<Tool, String> {
    let id = spec.id;
    let fail = |field: &str, why: &str| format!("tool catalog: tool '{id}': {field} {why}");
    let name_ok =
        |n: &str| !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok(&id) {
        return Err(fail("id", "must be 1-64 characters of letters, digits, '-', '_' or '.'"));
    }
    if let Some(bad) = spec.aliases.iter().find(|a| !name_ok(a)) {
        return Err(fail("aliases", &format!("has an invalid alias '{bad}'")));
    }
    if spec.price_micros < 0 {
        return Err(fail("price_micros", "must not be negative"));
    }
    let max_price = spec.max_price_micros.unwrap_or(spec.price_micros);
    if max_price < spec.price_micros {
        return Err(fail("max_price_micros", "must not be below price_micros (it is the hold)"));
    }
    let tokens = match (spec.input_micros_per_mtok, spec.output_micros_per_mtok, &spec.adapter) {
        (None, None, _) => None,
        (Some(i), Some(o), AdapterSpec::OpenaiChat { .. }) if i >= 0 && o >= 0 => {
            Some(TokenPrice { input_micros_per_mtok: i, output_micros_per_mtok: o })
        }
        (Some(_), Some(_), AdapterSpec::OpenaiChat { .. }) => {
            return Err(fail("input_micros_per_mtok/output_micros_per_mtok", "must not be negative"));
        }
        (_, _, AdapterSpec::OpenaiChat { .. }) => {
            return Err(fail("input_micros_per_mtok/output_micros_per_mtok", "must be set together"));
        }
        (Some(i), None, AdapterSpec::OpenaiEmbeddings { .. }) if i >= 0 => {
            Some(TokenPrice { input_micros_per_mtok: i, output_micros_per_mtok: 0 })
        }
        (_, _, AdapterSpec::OpenaiEmbeddings { .. }) => {
            return Err(fail(
                "input_micros_per_mtok",
                "must not be negative, and openai_embeddings tools take no output_micros_per_mtok",
            ));
        }
        _ => return Err(fail("input_micros_per_mtok", "is only for openai_chat and openai_embeddings tools")),
    };
    let is_chat = matches!(spec.adapter, AdapterSpec::OpenaiChat { .. });
    if !is_chat && (spec.image_input_tokens.is_some() || spec.max_output_tokens.is_some()) {
        return Err(fail("image_input_tokens/max_output_tokens", "are only for openai_chat tools"));
    }
    let max_output_tokens = spec.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS);
    if max_output_tokens == 0 {
        return Err(fail("max_output_tokens", "must be at least 1"));
    }
    if let AdapterSpec::FalQueue { per_output_image: true, count_field, .. } = &spec.adapter
        && (spec.price_micros == 0 || count_field.is_empty())
    {
        return Err(fail("price_micros/count_field", "must be set (a positive price per image and a field name)"));
    }
    if spec.pass_end_user
        && !matches!(spec.adapter, AdapterSpec::OpenaiChat { .. } | AdapterSpec::OpenaiEmbeddings { .. })
    {
        return Err(fail("pass_end_user", "is only for openai_chat and openai_embeddings tools"));
    }
    let timeout_ms = spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=600_000).contains(&timeout_ms) {
        return Err(fail("timeout_ms", "must be 1 to 600000"));
    }
    let sandbox =
        spec.sandbox.map(|v| serde_json::to_value(v).map_err(|e| fail("sandbox", &e.to_string()))).transpose()?;
    let endpoint = endpoint(&spec.adapter).map_err(|field| fail(field, "must be an http:// or https:// URL"))?;
    let secret = spec.adapter.secret_env().and_then(secret_of).and_then(ProviderSecret::parse);
    let headers = headers(&spec.adapter, secret.as_ref()).map_err(|why| fail("adapter.headers", &why))?;
    Ok(Tool {
        id: id.clone(),
        aliases: spec.aliases,
        description: spec.description,
        price: Micros(spec.price_micros),
        tokens,
        image_input_tokens: spec.image_input_tokens,
        max_output_tokens,
        max_price: Micros(max_price),
        timeout: Duration::from_millis(timeout_ms),
        sandbox,
        pass_end_user: spec.pass_end_user,
        adapter: spec.adapter,
        endpoint,
        secret,
        headers,
    })
}

/// The headers every request of the tool carries; on a bad fixed header, why.
fn headers(adapter: &AdapterSpec, secret: Option<&ProviderSecret>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let (fixed, scheme) = match adapter {
        AdapterSpec::Builtin { .. } => return Ok(vec![]),
        AdapterSpec::OpenaiChat { .. } | AdapterSpec::OpenaiEmbeddings { .. } => (None, "Bearer"),
        AdapterSpec::FalQueue { .. } => (None, "Key"),
        AdapterSpec::Http { headers, .. } => (Some(headers), "Bearer"),
    };
    let mut out = vec![];
    for (name, value) in fixed.into_iter().flatten() {
        let name = HeaderName::try_from(name.as_str()).map_err(|_| format!("has an invalid header name '{name}'"))?;
        let value = HeaderValue::try_from(value.as_str()).map_err(|_| format!("has an invalid value for '{name}'"))?;
        out.push((name, value));
    }
    if let Some(mut value) = secret.and_then(|s| HeaderValue::try_from(format!("{scheme} {}", s.expose())).ok()) {
        value.set_sensitive(true);
        out.push((header::AUTHORIZATION, value));
    }
    Ok(out)
}

/// The adapter's provider URL, checked; on a bad one, the field at fault.
fn endpoint(adapter: &AdapterSpec) -> Result<Option<Uri>, &'static str> {
    let parse = |text: &str, field| upstream::parse_url(text).ok_or(field);
    match adapter {
        AdapterSpec::Builtin { .. } => Ok(None),
        AdapterSpec::OpenaiChat { base_url, .. } | AdapterSpec::OpenaiEmbeddings { base_url, .. } => {
            let base = base_url.trim_end_matches('/');
            parse(base, "adapter.base_url")?;
            let path = if adapter.is_embeddings() { "embeddings" } else { "chat/completions" };
            parse(&format!("{base}/{path}"), "adapter.base_url").map(Some)
        }
        // Its URLs name the provider's request, so they are built per call; the submit URL is
        // checked here, so a bad one stops the server instead of failing paid calls.
        AdapterSpec::FalQueue { base_url, app, .. } => {
            parse(base_url, "adapter.base_url")?;
            parse(&format!("{}/{}", base_url.trim_end_matches('/'), app.trim_matches('/')), "adapter.app").map(|_| None)
        }
        AdapterSpec::Http { url, .. } => parse(url, "adapter.url").map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalog_resolves_ids_and_aliases() {
        let c = Catalog::default_catalog();
        assert_eq!(c.resolve("builtin-echo").unwrap().id, "echo");
        assert_eq!(c.resolve("gpt-4o-mini").unwrap().id, "or-gpt-4o-mini");
        assert!(c.resolve("nope").is_none());
        assert_eq!(c.resolve("echo").unwrap().price, Micros(10_000));
    }

    #[test]
    fn bad_catalogs_name_the_tool_and_field() {
        let tool = |extra: &str| {
            format!(
                "[[tools]]\nid = \"t\"\nprice_micros = 5\n{extra}\nadapter = {{ type = \"builtin\", name = \"echo\" }}\n"
            )
        };
        let err = Catalog::from_toml(&tool("max_price_micros = 1")).unwrap_err();
        assert!(err.contains("'t'") && err.contains("max_price_micros"), "{err}");
        let chat = |base_url: &str| {
            format!(
                "[[tools]]\nid = \"c\"\nprice_micros = 5\nadapter = {{ type = \"openai_chat\", base_url = \"{base_url}\", \
                 model = \"m\", api_key_env = \"K\" }}\n"
            )
        };
        for bad in ["openrouter.ai/api/v1", "ftp://openrouter.ai/api/v1", "https://"] {
            let err = Catalog::from_toml(&chat(bad)).unwrap_err();
            assert!(err.contains("'c'") && err.contains("adapter.base_url"), "{bad}: {err}");
        }
        let good = Catalog::from_toml(&chat("https://openrouter.ai/api/v1/")).unwrap();
        let endpoint = good.resolve("c").unwrap().endpoint.as_ref().map(|u| u.to_string());
        assert_eq!(endpoint.as_deref(), Some("https://openrouter.ai/api/v1/chat/completions"));
        let twice = format!("{}{}", tool(""), tool(""));
        assert!(Catalog::from_toml(&twice).unwrap_err().contains("used twice"));
        let unknown = "[[tools]]\nid = \"t\"\nprice_micros = 5\nadapter = { type = \"magic\" }\n";
        assert!(Catalog::from_toml(unknown).is_err());
        let no_price = "[[tools]]\nid = \"t\"\nadapter = { type = \"builtin\", name = \"echo\" }\n";
        assert!(Catalog::from_toml(no_price).unwrap_err().contains("price_micros"));
        let http = |header: &str| {
            format!(
                "[[tools]]\nid = \"h\"\nprice_micros = 5\nadapter = {{ type = \"http\", url = \"http://127.0.0.1:9/x\", \
                 headers = {{ {header} }} }}\n"
            )
        };
        let fal = "[[tools]]\nid = \"f\"\nprice_micros = 5\nadapter = { type = \"fal_queue\", base_url = \"https://queue.fal.run\", \
                   app = \"fal-ai/flux pro\", api_key_env = \"K\" }\n";
        let err = Catalog::from_toml(fal).unwrap_err();
        assert!(err.contains("'f'") && err.contains("adapter.app"), "{err}");
        for bad in ["\"bad name\" = \"v\"", "\"x-ok\" = \"line\\nbreak\""] {
            let err = Catalog::from_toml(&http(bad)).unwrap_err();
            assert!(err.contains("'h'") && err.contains("adapter.headers"), "{bad}: {err}");
        }
        assert_eq!(Catalog::from_toml(&http("\"x-team\" = \"visa\"")).unwrap().resolve("h").unwrap().headers.len(), 1);
        // Passing the end user on is for OpenAI's APIs only; embeddings need their input price.
        let err = Catalog::from_toml(&tool("pass_end_user = true")).unwrap_err();
        assert!(err.contains("'t'") && err.contains("pass_end_user"), "{err}");
        let embed = |extra: &str| {
            format!(
                "[[tools]]\nid = \"e\"\nprice_micros = 1\n{extra}\nadapter = {{ type = \"openai_embeddings\", \
                 base_url = \"https://api.openai.com/v1\", model = \"m\", api_key_env = \"K\" }}\n"
            )
        };
        let flat = Catalog::from_toml(&embed("")).unwrap();
        assert!(flat.resolve("e").unwrap().tokens.is_none(), "without token prices, a flat price");
        let err = Catalog::from_toml(&embed("input_micros_per_mtok = 20000\noutput_micros_per_mtok = 1")).unwrap_err();
        assert!(err.contains("input_micros_per_mtok"), "{err}");
        let good = Catalog::from_toml(&embed("input_micros_per_mtok = 20000\npass_end_user = true")).unwrap();
        let e = good.resolve("e").unwrap();
        assert_eq!(e.endpoint.as_ref().map(|u| u.to_string()).as_deref(), Some("https://api.openai.com/v1/embeddings"));
        assert!(e.pass_end_user && e.adapter.is_embeddings() && !e.adapter.is_chat());
    }

    #[test]
    fn the_provider_secret_is_read_at_load_sent_as_a_sensitive_header_and_never_printed() {
        let (var, secret) = ("VISA_CATALOG_UNIT_TEST_KEY", "sk-unit-0123456789abcdef");
        let text = format!(
            "[[tools]]\nid = \"f\"\nprice_micros = 5\nadapter = {{ type = \"fal_queue\", base_url = \"http://127.0.0.1:9\", \
             app = \"a\", api_key_env = \"{var}\" }}\n"
        );
        let asked = std::cell::RefCell::new(Vec::new());
        let catalog = Catalog::from_toml_with_secrets(&text, |name| {
            asked.borrow_mut().push(name.to_owned());
            (name == var).then(|| secret.to_owned())
        })
        .unwrap();
        assert_eq!(*asked.borrow(), [var], "the variable the catalog names, read once, at load");
        let tool = catalog.resolve("f").unwrap();
        assert!(tool.is_ready(), "kept from the load, not looked up again");
        let (name, value) = &tool.headers[0];
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("authorization", format!("Key {secret}").as_str()));
        assert!(value.is_sensitive());
        let printed = format!("{tool:?}");
        assert!(!printed.contains(&secret[..8]), "{printed}");
    }
}
