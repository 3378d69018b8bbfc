//! Several problems in one file: all are reported, in file order, and a problem in one entry
//! does not hide problems in others or cause follow-on errors.

use crate::problems;

#[test]
fn every_problem_in_a_file_is_reported_in_file_order() {
    let source = r#"[server]
listen = "nowhere"
unknown = 1

[models.gpt]
provider = "openai"
model = "gpt-4o"
base_url = "not a url"
fallback = "mock"
api_key_env = "OPENAI_API_KEY"

[models.broken]
provider = "nope"
model = "x"

[tools.get_weather]
description = "d"
url = "http://localhost/w"
parameters = { type = "array" }

[agents.assistant]
instructions = ""
model = "gtp"
tools = ["get_weather", "nope"]
max_steps = 0

[agents.other]
instructions = "fine"
model = "broken"
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"2:10: server.listen: invalid socket address "nowhere" (expected ip:port, e.g. 127.0.0.1:8080)"#,
            r#"3:1: server.unknown: unknown key (expected one of: listen, body_limit_bytes, shutdown_grace_secs, header_read_timeout_ms, body_read_timeout_ms)"#,
            "8:12: models.gpt.base_url: invalid url: relative URL without a base",
            r#"9:12: models.gpt.fallback: unknown model "mock" (known: gpt, broken)"#,
            r#"13:12: models.broken.provider: unknown provider "nope" (expected openai, anthropic or mock)"#,
            r#"19:23: tools.get_weather.parameters.type: must be a json schema with type "object""#,
            "22:16: agents.assistant.instructions: must not be empty",
            r#"23:9: agents.assistant.model: unknown model "gtp" (known: gpt, broken)"#,
            r#"24:25: agents.assistant.tools[1]: unknown tool "nope" (known: get_weather)"#,
            "25:13: agents.assistant.max_steps: must be between 1 and 50, got 0",
        ]
    );
}

#[test]
fn display_lists_one_problem_per_line() {
    let error = glassbox_config::parse("[server]\na = 1\nb = 2\n", "conf/glassbox.toml", &|_| None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "conf/glassbox.toml:2:1: server.a: unknown key (expected one of: listen, \
         body_limit_bytes, shutdown_grace_secs, header_read_timeout_ms, body_read_timeout_ms)\n\
         conf/glassbox.toml:3:1: server.b: unknown key (expected one of: listen, \
         body_limit_bytes, shutdown_grace_secs, header_read_timeout_ms, body_read_timeout_ms)"
    );
}

#[test]
fn messages_are_lowercase_without_a_final_period() {
    let all = problems("[server]\nListen = 1\n[models.m]\nprovider = 1\n[agents.a]\nmodel = \"x\"\n[tools.T]\n");
    assert!(all.len() >= 4, "{all:#?}");
    for problem in &all {
        let message = problem.splitn(3, ':').nth(2).unwrap().trim_start();
        let first = message.chars().next().unwrap();
        assert!(!first.is_uppercase() || message.starts_with("Listen"), "{problem}");
        assert!(!message.ends_with('.'), "{problem}");
    }
}
