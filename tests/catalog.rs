//! The tools the tests run, written once: a metered chat tool, a fal image tool, a priced
//! HTTP tool over the mock provider, and the builtins; each test takes the ones it needs and
//! changes what it tests (`set`: a timeout, a ceiling), and `catalog` builds them with the
//! provider secret handed in (tests never write the process environment).

use crate::mock_provider::{MockProvider, provider_secret};
use std::fmt::Display;
use visa_server::tools::catalog::Catalog;

/// One `[[tools]]` table: its fields in order, then its adapter's.
#[derive(Clone)]
pub struct TestTool {
    fields: Vec<(String, String)>,
    adapter: Vec<(String, String)>,
}

/// `key = value` pairs from literal ones.
fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Sets `key` to `value` in place, or adds it.
fn put(pairs: &mut Vec<(String, String)>, key: &str, value: String) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key.to_owned(), value)),
    }
}

impl TestTool {
    fn new(id: &str, fields: &[(&str, &str)], adapter: &[(&str, &str)]) -> Self {
        let mut all = vec![("id".to_owned(), format!("{id:?}"))];
        all.extend(pairs(fields));
        Self { fields: all, adapter: pairs(adapter) }
    }

    /// Metered at $0.15 / $0.60 per million tokens, 100 micros a call, at most $1, through the
    /// mock's OpenAI-compatible endpoint as `mock-model`, its secret named `var`.
    pub fn chat(id: &str, mock: &MockProvider, var: &str) -> Self {
        let (base, var) = (format!("{:?}", mock.base_url), format!("{var:?}"));
        let adapter =
            [("type", "\"openai_chat\""), ("base_url", &base), ("model", "\"mock-model\""), ("api_key_env", &var)];
        let fields = [
            ("price_micros", "100"),
            ("input_micros_per_mtok", "150000"),
            ("output_micros_per_mtok", "600000"),
            ("max_price_micros", "1000000"),
            ("timeout_ms", "5000"),
        ];
        Self::new(id, &fields, &adapter)
    }

    /// Embeddings at $0.02 per million input tokens (a micro at least), holding at most 10 cents.
    pub fn embeddings(id: &str, mock: &MockProvider, var: &str) -> Self {
        let (base, var) = (format!("{:?}", mock.base_url), format!("{var:?}"));
        let adapter = [
            ("type", "\"openai_embeddings\""),
            ("base_url", &base),
            ("model", "\"mock-embed\""),
            ("api_key_env", &var),
        ];
        let fields = [
            ("price_micros", "1"),
            ("input_micros_per_mtok", "20000"),
            ("max_price_micros", "100000"),
            ("timeout_ms", "5000"),
        ];
        Self::new(id, &fields, &adapter)
    }

    /// 2 cents an image, holding for at most 4, through the mock's fal queue (polled every 10 ms).
    pub fn fal(id: &str, mock: &MockProvider, var: &str) -> Self {
        let (base, var) = (format!("\"{}/fal\"", mock.base_url), format!("{var:?}"));
        let adapter = [
            ("type", "\"fal_queue\""),
            ("base_url", &base),
            ("app", "\"test-app\""),
            ("api_key_env", &var),
            ("per_output_image", "true"),
            ("poll_interval_ms", "10"),
        ];
        Self::new(id, &[("price_micros", "20000"), ("max_price_micros", "80000"), ("timeout_ms", "5000")], &adapter)
    }

    /// 2.5 cents a call to the mock's JSON endpoint, with a static header.
    pub fn http(id: &str, mock: &MockProvider, var: &str) -> Self {
        let (url, var) = (format!("\"{}/echo\"", mock.base_url), format!("{var:?}"));
        let adapter =
            [("type", "\"http\""), ("url", &url), ("api_key_env", &var), ("headers", r#"{ "x-team" = "visa" }"#)];
        Self::new(id, &[("price_micros", "25000"), ("timeout_ms", "5000")], &adapter)
    }

    /// A builtin (`echo`, `sleep`, `fail`) at 1 cent a call.
    pub fn builtin(id: &str, name: &str) -> Self {
        let name = format!("{name:?}");
        Self::new(id, &[("price_micros", "10000"), ("timeout_ms", "5000")], &[("type", "\"builtin\""), ("name", &name)])
    }

    /// The field `key` as `value` (a TOML value: `5000`, `"text"`, `["a"]`, `{ … }`), in place
    /// if the tool has it, else added.
    pub fn set(mut self, key: &str, value: impl Display) -> Self {
        put(&mut self.fields, key, value.to_string());
        self
    }

    /// Without the field `key` (a flat-priced chat tool has no per-token prices).
    pub fn unset(mut self, key: &str) -> Self {
        self.fields.retain(|(k, _)| k != key);
        self
    }

    /// The adapter's field `key` as `value` (a TOML value), in place if it has it, else added.
    pub fn adapter(mut self, key: &str, value: impl Display) -> Self {
        put(&mut self.adapter, key, value.to_string());
        self
    }

    fn toml(&self) -> String {
        let fields: String = self.fields.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let adapter: Vec<String> = self.adapter.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("[[tools]]\n{fields}adapter = {{ {} }}\n", adapter.join(", "))
    }
}

/// A catalog of `tools`, the provider secret `var` being `secret` (none: not configured).
pub fn catalog(tools: &[TestTool], var: &str, secret: Option<&str>) -> Catalog {
    let text: Vec<String> = tools.iter().map(TestTool::toml).collect();
    Catalog::from_toml_with_secrets(&text.join("\n"), provider_secret(var, secret)).unwrap()
}
