//! JSON schemas written as TOML: tool parameters and agent output schemas.

use serde_json::json;

use crate::{BASE, config, problem, problems};

fn tool(parameters: &str) -> String {
    format!("[tools.t]\ndescription = \"d\"\nurl = \"http://localhost/t\"\nparameters = {parameters}\n")
}

#[test]
fn toml_values_become_json() {
    let config = config(&tool(
        r#"{ type = "object", properties = { n = { type = "integer", minimum = -3, maximum = 1.5, default = 1 }, b = { type = "boolean", const = true }, l = { type = "array", items = { type = "string" }, maxItems = 2 } }, additionalProperties = false }"#,
    ));
    assert_eq!(
        config.tools[0].parameters,
        json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": -3, "maximum": 1.5, "default": 1},
                "b": {"type": "boolean", "const": true},
                "l": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            },
            "additionalProperties": false,
        })
    );
}

#[test]
fn parameters_as_a_sub_table() {
    let config = config(
        r#"[tools.t]
description = "d"
url = "http://localhost/t"

[tools.t.parameters]
type = "object"
required = ["city"]

[tools.t.parameters.properties.city]
type = "string"
description = "a city"
"#,
    );
    assert_eq!(
        config.tools[0].parameters,
        json!({
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "description": "a city"}},
        })
    );
}

#[test]
fn parameters_must_be_an_object_schema() {
    assert_eq!(
        problem(&tool(r#"{ type = "string" }"#)),
        r#"4:23: tools.t.parameters.type: must be a json schema with type "object""#
    );
    assert_eq!(
        problem(&tool(r#"{ properties = {} }"#)),
        r#"4:14: tools.t.parameters: must be a json schema with type "object""#
    );
    assert_eq!(
        problem(&tool(r#""object""#)),
        r#"4:14: tools.t.parameters: expected a table (a json schema), found a string"#
    );
}

#[test]
fn invalid_schema_points_at_the_offending_value() {
    let message = problem(&tool(r#"{ type = "object", properties = { city = { type = "strin" } } }"#));
    assert!(
        message.starts_with("4:64: tools.t.parameters.properties.city.type: invalid json schema: \"strin\""),
        "{message}"
    );

    let message = problem(&tool(r#"{ type = "object", required = "city" }"#));
    assert!(message.starts_with("4:44: tools.t.parameters.required: invalid json schema: "), "{message}");

    let message = problem(&tool(r#"{ type = "object", minProperties = -1 }"#));
    assert!(message.starts_with("4:49: tools.t.parameters.minProperties: invalid json schema: "), "{message}");
}

#[test]
fn schema_that_does_not_compile() {
    let message = problem(&tool(r#"{ type = "object", properties = { s = { type = "string", pattern = "(" } } }"#));
    assert!(message.starts_with("4:14: tools.t.parameters: invalid json schema: "), "{message}");
}

#[test]
fn datetimes_and_non_finite_floats_are_not_json() {
    assert_eq!(
        problems(&tool(
            r#"{ type = "object", properties = { d = { type = "string", default = 1979-05-27 }, f = { type = "number", maximum = inf } } }"#,
        )),
        vec![
            "4:81: tools.t.parameters.properties.d.default: datetimes cannot appear in a json \
             schema (write a string)",
            "4:128: tools.t.parameters.properties.f.maximum: inf cannot appear in a json schema \
             (not a finite number)",
        ]
    );
}

#[test]
fn output_schema_may_be_any_valid_schema() {
    let config = config(&format!("{BASE}output_schema = {{ type = \"array\", items = {{ type = \"integer\" }} }}\n"));
    assert_eq!(config.agents[0].output_schema, Some(json!({"type": "array", "items": {"type": "integer"}})));
    let message = problem(&format!("{BASE}output_schema = {{ type = 5 }}\n"));
    assert!(message.starts_with("9:26: agents.a.output_schema.type: invalid json schema: "), "{message}");
}

#[test]
fn unknown_meta_schema_is_an_error_not_a_panic() {
    assert_eq!(
        problem(&format!(
            "{BASE}output_schema = {{ \"$schema\" = \"https://example.com/custom\", type = \"object\" }}\n"
        )),
        "9:31: agents.a.output_schema.\"$schema\": unknown meta-schema \"https://example.com/custom\" \
         (supported: json schema drafts 4, 6, 7, 2019-09 and 2020-12)"
    );
}

#[test]
fn remote_references_are_not_fetched() {
    assert_eq!(
        problem(&format!("{BASE}output_schema = {{ \"$ref\" = \"https://example.com/s.json\" }}\n")),
        "9:17: agents.a.output_schema: invalid json schema: cannot resolve \
         \"https://example.com/s.json\" (only references within the schema are supported)"
    );
    // References within the schema are fine.
    let config = config(&format!(
        "{BASE}output_schema = {{ \"$defs\" = {{ n = {{ type = \"integer\" }} }}, \"$ref\" = \"#/$defs/n\" }}\n"
    ));
    assert!(config.agents[0].output_schema.is_some());
}

#[test]
fn draft_07_schemas_are_accepted() {
    let config = config(&format!(
        "{BASE}output_schema = {{ \"$schema\" = \"http://json-schema.org/draft-07/schema#\", type = \"object\", definitions = {{ x = {{ type = \"string\" }} }} }}\n"
    ));
    assert!(config.agents[0].output_schema.is_some());
}
