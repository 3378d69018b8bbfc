//! `${VAR}` interpolation of string values, wherever they are.

use glassbox_config::parse;
use serde_json::json;

use crate::{BASE, config, problem, problems};

#[test]
fn variables_defaults_and_escapes() {
    let config = config(
        r#"
[models.m]
provider = "openai"
model = "${MODEL_NAME:-gpt-4o-mini}"
base_url = "http://${HOST}:${PORT:-8000}/v1"
headers = { authorization = "Bearer ${TOKEN}", "x-empty" = "[${EMPTY}]", "x-default-on-empty" = "${EMPTY:-d}", "x-literal" = "$${HOST} costs $5" }

[agents.a]
instructions = 'literal strings are interpolated too: ${HOST}'
model = "m"
"#,
    );
    let model = config.model("m").unwrap();
    assert_eq!(model.model, "gpt-4o-mini");
    assert_eq!(model.base_url.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert_eq!(
        model.headers,
        vec![
            ("authorization".to_owned(), "Bearer secret-token".to_owned()),
            ("x-empty".to_owned(), "[]".to_owned()),
            ("x-default-on-empty".to_owned(), "d".to_owned()),
            ("x-literal".to_owned(), "${HOST} costs $5".to_owned()),
        ]
    );
    assert_eq!(config.agents[0].instructions, "literal strings are interpolated too: 127.0.0.1");
}

#[test]
fn references_are_interpolated_before_they_are_checked() {
    let config =
        parse(&format!("{BASE}[agents.b]\ninstructions = \"x\"\nmodel = \"${{AGENT_MODEL}}\"\n"), "g.toml", &|name| {
            (name == "AGENT_MODEL").then(|| "mock".to_owned())
        })
        .unwrap();
    assert_eq!(config.agent("b").unwrap().model, "mock");
}

#[test]
fn inside_schemas_and_arrays() {
    let config = config(
        r#"
[tools.t]
description = "${HOST}"
url = "http://${HOST}/t"
parameters = { type = "object", properties = { host = { type = "string", enum = ["${HOST}", "$${X}"] } } }
"#,
    );
    assert_eq!(config.tools[0].description, "127.0.0.1");
    assert_eq!(config.tools[0].parameters["properties"]["host"]["enum"], json!(["127.0.0.1", "${X}"]));
}

#[test]
fn unset_variable_points_at_its_reference() {
    assert_eq!(
        problem("[server]\nlisten = \"${HOST}:${LISTEN_PORT}\"\n"),
        r#"2:19: server.listen: environment variable "LISTEN_PORT" is not set"#
    );
}

#[test]
fn unset_variable_in_a_string_with_escapes_points_at_the_value() {
    // The escape makes the file text differ from the value, so the value's start is used.
    assert_eq!(
        problem(&format!("{BASE}description = \"tab\\t${{NOPE}}\"\n")),
        r#"9:15: agents.a.description: environment variable "NOPE" is not set"#
    );
}

#[test]
fn unset_variables_everywhere_are_all_reported() {
    let source = r#"[models.m]
provider = "openai"
model = "m"
headers = { authorization = "Bearer ${NO_TOKEN}" }

[tools.t]
description = "d"
url = "http://localhost/t"
parameters = { type = "object", description = "${NO_DESC}" }

[agents.a]
instructions = "x"
model = "m"
tools = ["${NO_TOOL}"]
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"4:37: models.m.headers.authorization: environment variable "NO_TOKEN" is not set"#,
            r#"9:48: tools.t.parameters.description: environment variable "NO_DESC" is not set"#,
            r#"14:11: agents.a.tools[0]: environment variable "NO_TOOL" is not set"#,
        ]
    );
}

#[test]
fn malformed_references() {
    assert_eq!(
        problem("[server]\nlisten = \"x${HOST\"\n"),
        r#"2:12: server.listen: unterminated "${" (write "$${" for a literal "${")"#
    );
    assert_eq!(
        problem("[server]\nlisten = \"${1HOST}\"\n"),
        "2:11: server.listen: invalid environment variable name \"1HOST\" in \"${...}\" \
         (use letters, digits and \"_\", not starting with a digit)"
    );
}

#[test]
fn keys_are_not_interpolated() {
    let config = config(&format!(
        "{BASE}output_schema = {{ type = \"object\", properties = {{ \"${{HOST}}\" = {{ type = \"string\" }} }} }}\n"
    ));
    assert_eq!(
        config.agents[0].output_schema,
        Some(json!({"type": "object", "properties": {"${HOST}": {"type": "string"}}}))
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(
        problem(&format!("{BASE}description = \"café — ${{NOPE}}\"\n")),
        r#"9:23: agents.a.description: environment variable "NOPE" is not set"#
    );
}
