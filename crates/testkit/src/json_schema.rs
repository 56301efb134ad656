//! Does a JSON value fit a JSON Schema? Only the keywords our published schemas use (the webhook event
//! catalogue's): `type` (a name or a list), `const`, `enum`, `required`, `properties`,
//! `additionalProperties: false` and `items`, plus annotations. Any other keyword is reported, so a
//! schema cannot grow a rule this check would silently skip. Not a validator for schemas from elsewhere.

use serde_json::Value;

/// Keywords that only describe.
const ANNOTATIONS: &[&str] = &["$schema", "$id", "title", "description", "format", "examples"];
/// Keywords [`violations`] checks.
const CHECKED: &[&str] = &["type", "const", "enum", "required", "properties", "additionalProperties", "items"];

/// What `value` breaks of `schema`, one line each with its JSON path (`$.data.endpoint_id`); empty
/// when it fits.
pub fn violations(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, value, "$", &mut out);
    out
}

/// Panics with every violation when `value` does not fit `schema`.
#[track_caller]
pub fn assert_fits(schema: &Value, value: &Value) {
    let v = violations(schema, value);
    assert!(v.is_empty(), "the value does not fit its schema:\n  {}\nvalue: {value}", v.join("\n  "));
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, wanted: &str) -> bool {
    let actual = type_name(v);
    actual == wanted || (wanted == "number" && actual == "integer")
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        out.push(format!("{path}: the schema is not an object"));
        return;
    };
    for k in s.keys().filter(|k| !ANNOTATIONS.contains(&k.as_str()) && !CHECKED.contains(&k.as_str())) {
        out.push(format!("{path}: the schema uses `{k}`, which this check does not understand"));
    }
    match s.get("type") {
        None => {}
        Some(Value::String(t)) if has_type(value, t) => {}
        Some(Value::Array(ts)) if ts.iter().any(|t| t.as_str().is_some_and(|t| has_type(value, t))) => {}
        Some(t) => out.push(format!("{path}: {}, but the schema says {t}", type_name(value))),
    }
    if let Some(c) = s.get("const").filter(|c| *c != value) {
        out.push(format!("{path}: {value} is not the constant {c}"));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array).filter(|e| !e.contains(value)) {
        out.push(format!("{path}: {value} is not one of {}", Value::from(e.clone())));
    }
    let properties = s.get("properties").and_then(Value::as_object);
    for name in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if properties.is_none_or(|p| !p.contains_key(name)) {
            out.push(format!("{path}: the schema requires `{name}` but does not describe it in `properties`"));
        }
        if value.as_object().is_some_and(|o| !o.contains_key(name)) {
            out.push(format!("{path}: `{name}` is required and missing"));
        }
    }
    if let Some(obj) = value.as_object() {
        for (name, v) in obj {
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => check(sub, v, &format!("{path}.{name}"), out),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{path}: `{name}` is not among the schema's properties (additionalProperties is false)"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(items, v, &format!("{path}[{i}]"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["id", "data"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string", "description": "annotations are fine"},
                "kind": {"const": "a"},
                "n": {"type": ["integer", "null"]},
                "x": {"type": "number"},
                "channel": {"enum": ["email", "sms"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn a_fitting_value_has_no_violations() {
        let v = json!({"id": "a", "kind": "a", "n": null, "x": 3, "channel": "sms", "tags": ["t"], "data": {"ok": true, "more": 1}});
        assert_eq!(violations(&schema(), &v), Vec::<String>::new());
        assert_fits(&schema(), &json!({"id": "a", "n": 2, "x": 1.5, "data": {"ok": false}}));
    }

    #[test]
    fn each_rule_is_checked_where_it_applies() {
        let cases = [
            (json!({"data": {"ok": true}}), "$: `id` is required and missing"),
            (json!({"id": 1, "data": {"ok": true}}), "$.id: integer, but the schema says \"string\""),
            (json!({"id": "a", "data": {"ok": true}, "extra": 1}), "$: `extra` is not among"),
            (json!({"id": "a", "kind": "b", "data": {"ok": true}}), "$.kind: \"b\" is not the constant \"a\""),
            (json!({"id": "a", "n": 1.5, "data": {"ok": true}}), "$.n: number, but"),
            (json!({"id": "a", "channel": "push", "data": {"ok": true}}), "$.channel: \"push\" is not one of"),
            (json!({"id": "a", "tags": ["t", 2], "data": {"ok": true}}), "$.tags[1]: integer, but"),
            (json!({"id": "a", "data": {}}), "$.data: `ok` is required and missing"),
            (json!({"id": "a", "data": {"ok": "yes"}}), "$.data.ok: string, but"),
        ];
        for (value, want) in cases {
            let got = violations(&schema(), &value);
            assert!(got.len() == 1 && got[0].starts_with(want), "{value}: {got:?}");
        }
    }

    #[test]
    fn a_schema_with_a_keyword_this_check_skips_or_an_undescribed_requirement_is_reported() {
        let got = violations(&json!({"oneOf": [{"type": "string"}]}), &json!("a"));
        assert_eq!(got, ["$: the schema uses `oneOf`, which this check does not understand"]);
        let got = violations(&json!({"type": "object", "required": ["a"]}), &json!({"a": 1}));
        assert_eq!(got, ["$: the schema requires `a` but does not describe it in `properties`"]);
    }
}
