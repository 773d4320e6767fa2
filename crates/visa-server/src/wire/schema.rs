//! The JSON Schema spelling of the input rules that `visa_core::policy` enforces, for the
//! OpenAPI document: each rule the parsers apply to a string (login, label, role, instant…)
//! is stated here once and used by every request type that carries it, so the document is
//! exactly as strict as the server. The schema-driven fuzzer (`tests/e2e/openapi_fuzz.rs`) checks both ways.

use utoipa::openapi::schema::{Array, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{KnownFormat, SchemaFormat};
use visa_core::policy::{MAX_CAP_CENTS, MAX_LABEL_CHARS, MAX_RATE_LIMIT_PER_SECOND, MIN_CAP_CENTS};

/// Characters a label may not hold (`KeyLabel::parse`): controls and display-spoofing format
/// characters.
const LABEL_BAD: &str = r"\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff";

/// Where a body field may also be `null` (read as absent).
fn or_null(t: Type) -> SchemaType {
    SchemaType::Array(vec![t, Type::Null])
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `Login::parse`: 1 to 39 of `a-z 0-9 - _`, starting with a letter or digit.
pub fn login() -> Object {
    string().pattern(Some("^[a-z0-9][a-z0-9_-]{0,38}$")).description(Some("Account login")).build()
}

/// `KeyLabel::parse`: 1 to 100 characters once surrounding whitespace is trimmed.
pub fn label() -> Object {
    let inner = MAX_LABEL_CHARS - 2;
    string()
        .pattern(Some(format!(r"^\s*[^\s{LABEL_BAD}]([^{LABEL_BAD}]{{0,{inner}}}[^\s{LABEL_BAD}])?\s*$")))
        .description(Some("1 to 100 characters, no control or invisible formatting characters"))
        .build()
}

/// `Role::parse`.
pub fn role() -> Object {
    string().enum_values(Some(visa_core::role::Role::ALL.iter().map(|r| r.as_str()))).build()
}

/// `parse_instant`: RFC 3339 with an offset, 1970 to 9999 (UTC).
pub fn instant() -> Object {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))).description(Some("RFC 3339")).build()
}

/// A cap in cents; the server clamps it to 1..=100000000, so any integer is accepted.
pub fn cap_cents() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .description(Some(format!("Clamped to {MIN_CAP_CENTS}..={MAX_CAP_CENTS}")))
        .build()
}

/// `parse_rate_limit`: 1 to 100000 per second.
pub fn rate_limit() -> Object {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(MAX_RATE_LIMIT_PER_SECOND)).build()
}

/// `Limit`: the limit a refusal names.
pub fn limit() -> Object {
    nullable(string().enum_values(Some(super::Limit::ALL.map(super::Limit::as_str))).build())
}

/// `parse_cap_alert_percent`: 1 to 100.
pub fn percent() -> Object {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(100)).build()
}

/// `CidrAllowlist::parse`: IPv4 or IPv6 networks or bare addresses.
pub fn cidrs() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new().items(string().description(Some("e.g. 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7"))).build()
}

/// `ToolScope::parse`.
pub fn tool_scope() -> Object {
    string().enum_values(Some(["restricted", "all_supported_tools"])).build()
}

/// `auth::password::validate`.
pub fn password() -> Object {
    string()
        .min_length(Some(visa_core::password::MIN_PASSWORD_CHARS))
        .max_length(Some(visa_core::password::MAX_PASSWORD_CHARS))
        .build()
}

/// The reconcile decision (`app::executions::reconcile`): exactly one of a capture in micros,
/// a capture in cents (each 0 or more, `void` absent, null or false beside it), or `void: true`;
/// the other members absent or null.
pub fn reconcile_request() -> utoipa::openapi::schema::OneOf {
    use utoipa::openapi::schema::{AdditionalProperties, OneOfBuilder};
    let null = || ObjectBuilder::new().schema_type(Type::Null).build();
    let amount = |max: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(max))
            .build()
    };
    let not_void =
        ObjectBuilder::new().schema_type(or_null(Type::Boolean)).enum_values(Some([Some(false), None])).build();
    let closed = || Some(AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false));
    let capture = |field: &str, other: &str, max: i64| {
        ObjectBuilder::new()
            .property(field, amount(max))
            .required(field)
            .property(other, null())
            .property("void", not_void.clone())
            .additional_properties(closed())
            .description(Some(format!("Capture `{field}`")))
    };
    let void = ObjectBuilder::new()
        .property("void", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])).build())
        .required("void")
        .property("capture_micros", null())
        .property("capture_cents", null())
        .additional_properties(closed())
        .description(Some("Void the hold"));
    OneOfBuilder::new()
        .item(capture("capture_micros", "capture_cents", i64::MAX))
        .item(capture("capture_cents", "capture_micros", i64::MAX / 10_000))
        .item(void)
        .description(Some("Exactly one of capture_micros or capture_cents (at most the hold), or void: true"))
        .build()
}

/// `ExecutionState::parse`.
pub fn execution_state() -> Object {
    string().enum_values(Some(visa_store::ExecutionState::ALL.iter().map(|s| s.as_str()))).build()
}

/// The `…_or_null` forms: the same rule, for fields where `null` means absent (or cleared).
fn nullable(mut schema: Object) -> Object {
    if let SchemaType::Type(t) = &schema.schema_type {
        schema.schema_type = or_null(t.clone());
    }
    if let Some(values) = &mut schema.enum_values {
        values.push(serde_json::Value::Null);
    }
    schema
}

pub fn password_or_null() -> Object {
    nullable(password())
}

pub fn cap_cents_or_null() -> Object {
    nullable(cap_cents())
}

pub fn rate_limit_or_null() -> Object {
    nullable(rate_limit())
}

pub fn percent_or_null() -> Object {
    nullable(percent())
}

pub fn instant_or_null() -> Object {
    nullable(instant())
}

/// A key's `idempotency`: `required` (default) or `optional` (OpenAI surface only).
/// A key's `idempotency` and `end_user` rules.
pub fn required_or_optional() -> Object {
    string().enum_values(Some(["required", "optional"])).build()
}

pub fn required_or_optional_or_null() -> Object {
    nullable(required_or_optional())
}

pub fn tool_scope_or_null() -> Object {
    nullable(tool_scope())
}

pub fn cidrs_or_null() -> Array {
    let mut schema = cidrs();
    schema.schema_type = or_null(Type::Array);
    schema
}

/// The `error_code` property: one of the codes the API answers with.
pub fn error_code() -> Object {
    string()
        .enum_values(Some(visa_core::ErrorCode::ALL.iter().map(|c| c.as_str())))
        .description(Some("Stable machine-readable code (docs/errors.md)"))
        .build()
}
