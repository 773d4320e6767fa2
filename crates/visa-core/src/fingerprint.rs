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
    write_canonical(body, &mut Hashing(&mut hasher));
    hasher.finalize().into()
}

/// A request's fingerprint with the end user it is made for (a header on execute): the same
/// body for another end user is another request. Without an end user the fingerprint is
/// `request_fingerprint`'s alone, as it was before end users existed.
pub fn with_end_user(fingerprint: [u8; 32], end_user: Option<&str>) -> [u8; 32] {
    match end_user {
        None => fingerprint,
        Some(user) => {
            Sha256::new().chain_update(fingerprint).chain_update(b"\nend_user\n").chain_update(user).finalize().into()
        }
    }
}

/// Feeds what serde_json writes straight into the hash (no intermediate string).
struct Hashing<'a>(&'a mut Sha256);

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `value` as JSON with every object's keys sorted; names and scalars are written as
/// serde_json writes them (writing into a hash cannot fail).
fn write_canonical(value: &Value, out: &mut Hashing) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.0.update(b"{");
            for (i, (name, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.0.update(b",");
                }
                let _ = serde_json::to_writer(&mut *out, name);
                out.0.update(b":");
                write_canonical(item, out);
            }
            out.0.update(b"}");
        }
        Value::Array(items) => {
            out.0.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.0.update(b",");
                }
                write_canonical(item, out);
            }
            out.0.update(b"]");
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hash covers exactly these bytes: fingerprints stored by earlier releases still match.
    #[test]
    fn the_canonical_bytes_are_stable() {
        let body = json!({ "b": [1, 2.5, null, true, "x\"y"], "a": { "é": "\n" } });
        let mut expected = Sha256::new();
        expected.update("POST\necho\n".as_bytes());
        expected.update(r#"{"a":{"é":"\n"},"b":[1,2.5,null,true,"x\"y"]}"#.as_bytes());
        assert_eq!(request_fingerprint("POST", "echo", &body), <[u8; 32]>::from(expected.finalize()));
    }

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
