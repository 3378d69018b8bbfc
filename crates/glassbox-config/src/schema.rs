//! JSON schemas written as TOML: conversion to JSON and validation against the JSON Schema
//! meta-schema, with problems reported at the TOML value they come from.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ReferencingError, ValidationError};
use serde_json::{Map, Number, Value};
use toml::de::DeValue;

use crate::reader::{Cx, Field, fields_of, kind_of};

/// Where one JSON value of the converted schema came from.
pub(crate) struct Origin {
    /// JSON pointer of the value inside the schema (`/properties/city`).
    pointer: String,
    /// The dotted TOML path that names it in messages.
    path: String,
    offset: usize,
}

/// Converts any TOML value to JSON (strings interpolated), without schema checks.
pub(crate) fn value(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<Value> {
    let n_problems = cx.n_problems();
    let json = to_json(cx, field, String::new(), &mut Vec::new());
    json.filter(|_| cx.n_problems() == n_problems)
}

/// Converts `field` to JSON and checks it is a valid schema. `require_object` additionally
/// demands `type = "object"` at the root (tool parameters).
pub(crate) fn schema(cx: &mut Cx<'_>, field: &Field<'_>, require_object: bool) -> Option<Value> {
    if !matches!(field.node.get_ref(), DeValue::Table(_)) {
        cx.error(
            field.offset(),
            format!("{}: expected a table (a json schema), found {}", field.path, kind_of(field.node.get_ref())),
        );
        return None;
    }
    let mut origins = Vec::new();
    let n_problems = cx.n_problems();
    let json = to_json(cx, field, String::new(), &mut origins);
    let json = json.filter(|_| cx.n_problems() == n_problems)?;

    if require_object && json.get("type") != Some(&Value::String("object".to_owned())) {
        let (offset, path) = match origins.iter().find(|origin| origin.pointer == "/type") {
            Some(origin) => (origin.offset, origin.path.as_str()),
            None => (field.offset(), field.path.as_str()),
        };
        cx.error(offset, format!("{path}: must be a json schema with type \"object\""));
        return None;
    }

    let meta_validator = match jsonschema::meta::validator_for(&json) {
        Ok(meta_validator) => meta_validator,
        Err(error) => {
            // Only an unknown `$schema` gets here: the drafts themselves are bundled.
            let (offset, path) = match origins.iter().find(|origin| origin.pointer == "/$schema") {
                Some(origin) => (origin.offset, origin.path.as_str()),
                None => (field.offset(), field.path.as_str()),
            };
            let message = match json.get("$schema").and_then(Value::as_str) {
                Some(uri) => format!(
                    "{path}: unknown meta-schema {uri:?} (supported: json schema drafts 4, 6, 7, \
                     2019-09 and 2020-12)"
                ),
                None => format!("{path}: invalid json schema: {}", describe(&error)),
            };
            cx.error(offset, message);
            return None;
        }
    };
    let mut reported_pointers: Vec<String> = Vec::new();
    for error in meta_validator.iter_errors(&json) {
        let pointer = error.instance_path().as_str().to_owned();
        if reported_pointers.contains(&pointer) {
            continue;
        }
        let origin = locate(&origins, &pointer);
        let (offset, path) = match origin {
            Some(origin) => (origin.offset, origin.path.as_str()),
            None => (field.offset(), field.path.as_str()),
        };
        cx.error(offset, format!("{path}: invalid json schema: {}", describe(&error)));
        reported_pointers.push(pointer);
    }
    if !reported_pointers.is_empty() {
        return None;
    }
    // The meta-schema does not catch everything that makes a schema unusable (a `pattern`
    // that is not a regular expression, a `$ref` that cannot be resolved).
    if let Err(error) = jsonschema::validator_for(&json) {
        cx.error(field.offset(), format!("{}: invalid json schema: {}", field.path, describe(&error)));
        return None;
    }
    Some(json)
}

/// The error's message, in words that fit a configuration file.
fn describe(error: &ValidationError<'_>) -> String {
    match error.kind() {
        ValidationErrorKind::Referencing(ReferencingError::Unretrievable { uri, .. }) => {
            format!("cannot resolve {uri:?} (only references within the schema are supported)")
        }
        _ => error.to_string(),
    }
}

/// The origin of the value at `pointer`, or of its nearest recorded ancestor.
fn locate<'o>(origins: &'o [Origin], pointer: &str) -> Option<&'o Origin> {
    origins
        .iter()
        .filter(|origin| {
            pointer == origin.pointer
                || (pointer.starts_with(&origin.pointer) && pointer[origin.pointer.len()..].starts_with('/'))
        })
        .max_by_key(|origin| origin.pointer.len())
}

pub(crate) fn to_json(cx: &mut Cx<'_>, field: &Field<'_>, pointer: String, origins: &mut Vec<Origin>) -> Option<Value> {
    origins.push(Origin { pointer: pointer.clone(), path: field.path.clone(), offset: field.offset() });
    match field.node.get_ref() {
        DeValue::String(text) => cx.interpolate(&field.path, field.node, text).map(Value::String),
        DeValue::Integer(_) => {
            let value = cx.integer(field, i128::from(i64::MIN)..=i128::from(u64::MAX))?;
            let number = match i64::try_from(value) {
                Ok(value) => Number::from(value),
                Err(_) => Number::from(u64::try_from(value).ok()?),
            };
            Some(Value::Number(number))
        }
        DeValue::Float(float) => {
            let number = float.as_str().parse::<f64>().ok().and_then(Number::from_f64);
            if number.is_none() {
                cx.error(
                    field.offset(),
                    format!("{}: {float} cannot appear in a json schema (not a finite number)", field.path),
                );
            }
            number.map(Value::Number)
        }
        DeValue::Boolean(value) => Some(Value::Bool(*value)),
        DeValue::Datetime(_) => {
            cx.error(
                field.offset(),
                format!("{}: datetimes cannot appear in a json schema (write a string)", field.path),
            );
            None
        }
        DeValue::Array(array) => {
            let mut ok = true;
            let mut items = Vec::with_capacity(array.len());
            for (idx, node) in array.iter().enumerate() {
                let element = Field {
                    key: field.key,
                    key_offset: node.span().start,
                    path: format!("{}[{idx}]", field.path),
                    node,
                };
                match to_json(cx, &element, format!("{pointer}/{idx}"), origins) {
                    Some(item) => items.push(item),
                    None => ok = false,
                }
            }
            ok.then_some(Value::Array(items))
        }
        DeValue::Table(table) => {
            let mut ok = true;
            let mut object = Map::new();
            for entry in fields_of(&field.path, table) {
                let child_pointer = format!("{pointer}/{}", escape_pointer(entry.key));
                match to_json(cx, &entry, child_pointer, origins) {
                    Some(value) => {
                        object.insert(entry.key.to_owned(), value);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(Value::Object(object))
        }
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
