//! Builds a deterministic JSON value that satisfies a JSON schema, for the mock provider's tool
//! arguments (`mock-tool`) and structured answers (`mock-json`).
//!
//! Covers what tool and output schemas use in practice: `type` (also as a list), `properties`
//! and `required`, `items` / `prefixItems` with `minItems` / `maxItems`, `enum`, `const`,
//! numeric bounds, string lengths and common formats, `anyOf` / `oneOf` (the first non-null
//! branch), `allOf` (merged), and local `$ref`s (`#/$defs/..`, `#/definitions/..`). `pattern`
//! and `multipleOf` are not honoured.

use serde_json::{Map, Value, json};

/// Which properties of an object get a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Properties {
    /// Only the required ones, and arrays as short as allowed: minimal tool arguments.
    Required,
    /// All of them, and arrays with at least one item: a complete-looking answer.
    All,
}

/// Deeper nesting than this (a recursive `$ref`) ends in `null`.
const MAX_DEPTH: usize = 16;

/// A value satisfying `schema`; strings are `text`, numbers 1 (moved into any bounds),
/// booleans `true`.
pub(crate) fn instance(schema: &Value, text: &str, properties: Properties) -> Value {
    Synthesizer { root: schema, text, properties }.value(schema, 0)
}

struct Synthesizer<'a> {
    root: &'a Value,
    text: &'a str,
    properties: Properties,
}

impl Synthesizer<'_> {
    fn value(&self, schema: &Value, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let schema = match schema {
            Value::Object(schema) => schema,
            Value::Bool(false) => return Value::Null,
            _ => return Value::String(self.text.to_owned()),
        };
        if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|reference| self.resolve(reference)) {
            return self.value(target, depth + 1);
        }
        if let Some(constant) = schema.get("const") {
            return constant.clone();
        }
        if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|options| options.first()) {
            return first.clone();
        }
        for combinator in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
                let branch = branches.iter().find(|branch| !is_null_type(branch)).or(branches.first());
                if let Some(branch) = branch {
                    return self.value(branch, depth + 1);
                }
            }
        }
        if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = schema.clone();
            merged.remove("allOf");
            for branch in branches {
                let branch = match branch.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
                    Some(target) => target,
                    None => branch,
                };
                if let Value::Object(branch) = branch {
                    merge_schema(&mut merged, branch);
                }
            }
            return self.value(&Value::Object(merged), depth + 1);
        }
        match schema_type(schema) {
            "object" => self.object(schema, depth),
            "array" => self.array(schema, depth),
            "integer" => json!(integer_in_bounds(schema)),
            "number" => number_in_bounds(schema),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            _ => Value::String(self.string(schema)),
        }
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        reference.strip_prefix('#').and_then(|pointer| self.root.pointer(pointer))
    }

    fn object(&self, schema: &Map<String, Value>, depth: usize) -> Value {
        let declared = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut object = Map::new();
        if let Some(declared) = declared {
            for (name, property) in declared {
                if self.properties == Properties::All || required.contains(&name.as_str()) {
                    object.insert(name.clone(), self.value(property, depth + 1));
                }
            }
        }
        // Required names without a declared schema still need a value.
        for name in required {
            if !object.contains_key(name) {
                object.insert(name.to_owned(), Value::String(self.text.to_owned()));
            }
        }
        Value::Object(object)
    }

    fn array(&self, schema: &Map<String, Value>, depth: usize) -> Value {
        let min_items = bound(schema, "minItems").unwrap_or(0);
        let max_items = bound(schema, "maxItems").unwrap_or(usize::MAX);
        let wanted = match self.properties {
            Properties::Required => min_items,
            Properties::All => min_items.max(1).min(max_items),
        };
        let prefix = schema.get("prefixItems").and_then(Value::as_array);
        let items = schema.get("items");
        let mut array = Vec::with_capacity(wanted);
        for item_idx in 0..wanted {
            let item_schema = prefix
                .and_then(|prefix| prefix.get(item_idx))
                .or(items.filter(|items| items.is_object() || items.is_boolean()))
                .or_else(|| items.and_then(Value::as_array).and_then(|tuple| tuple.get(item_idx)));
            array.push(match item_schema {
                Some(item_schema) => self.value(item_schema, depth + 1),
                None => Value::String(self.text.to_owned()),
            });
        }
        Value::Array(array)
    }

    fn string(&self, schema: &Map<String, Value>) -> String {
        let formatted = match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => Some("2025-01-01T00:00:00Z"),
            Some("date") => Some("2025-01-01"),
            Some("time") => Some("00:00:00Z"),
            Some("email") => Some("mock@example.com"),
            Some("uri" | "url") => Some("https://example.com/"),
            Some("uuid") => Some("00000000-0000-4000-8000-000000000000"),
            Some("ipv4") => Some("127.0.0.1"),
            _ => None,
        };
        let mut text = formatted.unwrap_or(self.text).to_owned();
        if let Some(max_length) = bound(schema, "maxLength")
            && let Some((cut, _)) = text.char_indices().nth(max_length)
        {
            text.truncate(cut);
        }
        if let Some(min_length) = bound(schema, "minLength") {
            let missing = min_length.saturating_sub(text.chars().count());
            text.extend(std::iter::repeat_n('x', missing));
        }
        text
    }
}

fn is_null_type(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The schema's type: the first non-null one of a list, or inferred from its keywords.
fn schema_type(schema: &Map<String, Value>) -> &str {
    match schema.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => {
            let mut names = kinds.iter().filter_map(Value::as_str);
            let first = kinds.first().and_then(Value::as_str).unwrap_or("string");
            names.find(|kind| *kind != "null").unwrap_or(first)
        }
        _ if schema.contains_key("properties") || schema.contains_key("required") => "object",
        _ if schema.contains_key("items") || schema.contains_key("prefixItems") => "array",
        _ if ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"].iter().any(|k| schema.contains_key(*k)) => {
            "number"
        }
        _ => "string",
    }
}

fn bound(schema: &Map<String, Value>, keyword: &str) -> Option<usize> {
    schema.get(keyword).and_then(Value::as_u64).and_then(|value| usize::try_from(value).ok())
}

/// 1, moved up to the minimum or down to the maximum when those exclude it.
fn number_in_bounds(schema: &Map<String, Value>) -> Value {
    let get = |keyword: &str| schema.get(keyword).and_then(Value::as_f64);
    let mut value = 1.0_f64;
    if let Some(minimum) = get("minimum") {
        value = value.max(minimum);
    }
    if let Some(exclusive) = get("exclusiveMinimum")
        && value <= exclusive
    {
        value = exclusive + 1.0;
    }
    if let Some(maximum) = get("maximum") {
        value = value.min(maximum);
    }
    if let Some(exclusive) = get("exclusiveMaximum")
        && value >= exclusive
    {
        value = exclusive - 1.0;
    }
    if value.fract() == 0.0 && value.abs() < 9.0e15 { json!(value as i64) } else { json!(value) }
}

fn integer_in_bounds(schema: &Map<String, Value>) -> i64 {
    let get = |keyword: &str| schema.get(keyword).and_then(Value::as_f64);
    let mut value: i64 = 1;
    if let Some(minimum) = get("minimum") {
        value = value.max(minimum.ceil() as i64);
    }
    if let Some(exclusive) = get("exclusiveMinimum") {
        value = value.max(exclusive.floor() as i64 + 1);
    }
    if let Some(maximum) = get("maximum") {
        value = value.min(maximum.floor() as i64);
    }
    if let Some(exclusive) = get("exclusiveMaximum") {
        value = value.min(exclusive.ceil() as i64 - 1);
    }
    value
}

/// Merges an `allOf` branch into `merged`: properties and required lists are unioned, other
/// keywords are taken when `merged` does not have them yet.
fn merge_schema(merged: &mut Map<String, Value>, branch: &Map<String, Value>) {
    for (keyword, value) in branch {
        match (keyword.as_str(), merged.get_mut(keyword), value) {
            ("properties", Some(Value::Object(existing)), Value::Object(more)) => {
                for (name, property) in more {
                    existing.entry(name.clone()).or_insert_with(|| property.clone());
                }
            }
            ("required", Some(Value::Array(existing)), Value::Array(more)) => {
                for name in more {
                    if !existing.contains(name) {
                        existing.push(name.clone());
                    }
                }
            }
            (_, None, _) => {
                merged.insert(keyword.clone(), value.clone());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_mode_fills_only_required_properties() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 3},
                "metric": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                "optional": {"type": "string"}
            },
            "required": ["city", "days", "metric", "tags", "extra"]
        });
        assert_eq!(
            instance(&schema, "Oslo", Properties::Required),
            json!({"city": "Oslo", "days": 3, "metric": true, "tags": [], "extra": {"a": "Oslo"}})
        );
    }

    #[test]
    fn all_mode_respects_enum_const_bounds_and_refs() {
        let schema = json!({
            "type": "object",
            "$defs": {"unit": {"enum": ["celsius", "fahrenheit"]}},
            "properties": {
                "unit": {"$ref": "#/$defs/unit"},
                "kind": {"const": "forecast"},
                "score": {"type": "number", "minimum": 0.5, "maximum": 0.9},
                "count": {"type": ["integer", "null"], "exclusiveMinimum": 4},
                "maybe": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 2}]},
                "list": {"type": "array", "items": {"type": "integer"}},
                "code": {"type": "string", "minLength": 6}
            }
        });
        assert_eq!(
            instance(&schema, "hi", Properties::All),
            json!({"unit": "celsius", "kind": "forecast", "score": 0.9, "count": 5, "maybe": "hi", "list": [1], "code": "hixxxx"})
        );
    }

    #[test]
    fn all_of_is_merged_and_recursion_ends() {
        let schema = json!({
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}
            ]
        });
        assert_eq!(instance(&schema, "t", Properties::Required), json!({"a": "t", "b": true}));

        let recursive = json!({"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}}, "$ref": "#/$defs/node"});
        let value = instance(&recursive, "t", Properties::Required);
        assert!(value.is_object());
    }
}
