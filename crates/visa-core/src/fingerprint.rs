//! The fingerprint of a paid request, stored with its Idempotency-Key: a retry must be the
//! same request (method, tool, input), or it is a different operation reusing the key.
//! JSON object keys are sorted first, so key order and whitespace do not matter.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// SHA-256 of `method`, the canonical tool id and the canonical JSON of `body`.
pub fn request_fingerprint(method: &str, tool: &str, body: &Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [method, "\n", tool, "\n"] {
        hasher.update(part.as_bytes());
    }
    write_canonical(body, &mut |bytes| hasher.update(bytes));
    hasher.finalize().into()
}

fn write_canonical(value: &Value, out: &mut dyn FnMut(&[u8])) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out(b"{");
            for (i, (name, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                out(Value::String(name.clone()).to_string().as_bytes());
                out(b":");
                write_canonical(item, out);
            }
            out(b"}");
        }
        Value::Array(items) => {
            out(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                write_canonical(item, out);
            }
            out(b"]");
        }
        scalar => out(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter_but_values_do() {
        let a: Value = serde_json::from_str(r#"{"input":{"a":1,"b":[1,{"y":2,"x":1}]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "input" : { "b":[1,{"x":1,"y":2}], "a":1 } }"#).unwrap();
        assert_eq!(request_fingerprint("POST", "echo", &a), request_fingerprint("POST", "echo", &b));
        let c = json!({ "input": { "a": 2, "b": [1, { "x": 1, "y": 2 }] } });
        assert_ne!(request_fingerprint("POST", "echo", &a), request_fingerprint("POST", "echo", &c));
        assert_ne!(request_fingerprint("POST", "echo", &a), request_fingerprint("POST", "sleep", &a));
    }
}
