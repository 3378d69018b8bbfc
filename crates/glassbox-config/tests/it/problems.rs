//! One kind of problem at a time, each with its exact `line:column` and message.

use crate::{BASE, problem, problems};

#[test]
fn toml_syntax_error() {
    assert_eq!(problem("[server]\nlisten = \n"), "2:10: string values must be quoted, expected literal string");
}

#[test]
fn several_syntax_errors_are_all_reported() {
    let all = problems("a = [1,\nb = 2\n[models\n");
    assert!(all.len() >= 2, "{all:#?}");
    assert!(all.iter().all(|p| !p.ends_with('.')), "{all:#?}");
}

#[test]
fn duplicate_table_is_a_syntax_error() {
    assert_eq!(problem("[models.m]\nprovider = \"mock\"\n[models.m]\nmodel = \"x\"\n"), "3:9: duplicate key");
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        problem(&format!("{BASE}\n[agnets.b]\ninstructions = \"x\"\n")),
        r#"10:2: agnets: unknown key (did you mean "agents"?)"#
    );
}

#[test]
fn unknown_key_without_a_near_miss_lists_the_known_keys() {
    assert_eq!(
        problem("[server]\ncolour = \"red\"\n"),
        "2:1: server.colour: unknown key (expected one of: listen, body_limit_bytes, \
         shutdown_grace_secs, header_read_timeout_ms, body_read_timeout_ms)"
    );
}

#[test]
fn unknown_keys_in_every_section() {
    let source = r#"[models.m]
provider = "mock"
model = "m"
modle = "typo"

[tools.t]
description = "d"
url = "http://localhost/t"
parameters = { type = "object" }
method_ = "GET"

[agents.a]
instructions = "x"
model = "m"
temprature = 0.1
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"4:1: models.m.modle: unknown key (did you mean "model"?)"#,
            r#"10:1: tools.t.method_: unknown key (did you mean "method"?)"#,
            r#"15:1: agents.a.temprature: unknown key (did you mean "temperature"?)"#,
        ]
    );
}

#[test]
fn wrong_types() {
    let source = r#"[server]
listen = 8080
body_limit_bytes = "1MiB"

[models.m]
provider = "mock"
model = 3
max_retries = 1.5
headers = ["x"]

[agents.a]
instructions = "x"
model = "m"
tools = "t"
temperature = "hot"
"#;
    assert_eq!(
        problems(source),
        vec![
            "2:10: server.listen: expected a string, found an integer",
            "3:20: server.body_limit_bytes: expected an integer, found a string",
            "7:9: models.m.model: expected a string, found an integer",
            "8:15: models.m.max_retries: expected an integer, found a float",
            "9:11: models.m.headers: expected a table, found an array",
            "14:9: agents.a.tools: expected an array, found a string",
            "15:15: agents.a.temperature: expected a number, found a string",
        ]
    );
}

#[test]
fn section_of_the_wrong_type() {
    assert_eq!(problem("models = 3\n"), "1:10: models: expected a table, found an integer");
    assert_eq!(problem("[models]\nm = \"mock\"\n"), "2:5: models.m: expected a table, found a string");
}

#[test]
fn missing_required_keys_point_at_the_table() {
    let source = r#"[models.m]
provider = "mock"

[tools.t]
url = "http://localhost"

[agents.a]
model = "m"
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"1:9: models.m: missing required key "model""#,
            r#"4:8: tools.t: missing required key "description""#,
            r#"4:8: tools.t: missing required key "parameters""#,
            r#"7:9: agents.a: missing required key "instructions""#,
        ]
    );
}

#[test]
fn unknown_model_reference() {
    let source = r#"[models.gpt]
provider = "openai"
model = "gpt-4o"

[models.mock]
provider = "mock"
model = "m"

[agents.assistant]
instructions = "x"
model = "gtp"
"#;
    assert_eq!(problem(source), r#"11:9: agents.assistant.model: unknown model "gtp" (known: gpt, mock)"#);
}

#[test]
fn references_when_nothing_is_declared() {
    assert_eq!(
        problems("[agents.a]\ninstructions = \"x\"\nmodel = \"m\"\ntools = [\"t\"]\n"),
        vec![
            r#"3:9: agents.a.model: unknown model "m" (no models declared)"#,
            r#"4:10: agents.a.tools[0]: unknown tool "t" (no tools declared)"#,
        ]
    );
}

#[test]
fn unknown_and_duplicate_tool_references() {
    let source = r#"[models.m]
provider = "mock"
model = "m"

[tools.get_weather]
description = "d"
url = "http://localhost/w"
parameters = { type = "object" }

[agents.a]
instructions = "x"
model = "m"
tools = ["get_weather", "get_wether", "get_weather"]
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"13:25: agents.a.tools[1]: unknown tool "get_wether" (known: get_weather)"#,
            r#"13:39: agents.a.tools[2]: tool "get_weather" is listed more than once"#,
        ]
    );
}

#[test]
fn fallback_problems() {
    let source = r#"[models.a]
provider = "openai"
model = "x"
api_key_env = "A_KEY"
fallback = "nope"

[models.b]
provider = "openai"
model = "x"
api_key_env = "B_KEY"
fallback = "b"

[models.c]
provider = "openai"
model = "x"
api_key_env = "C_KEY"
fallback = "d"

[models.d]
provider = "openai"
model = "x"
api_key_env = "D_KEY"
fallback = "m"

[models.e]
provider = "openai"
model = "x"
fallback = "m"

[models.f]
provider = "openai"
model = "x"
api_key_env = "F_KEY"
fallback = "e"

[models.m]
provider = "mock"
model = "m"
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"5:12: models.a.fallback: unknown model "nope" (known: a, b, c, d, e, f, m)"#,
            r#"11:12: models.b.fallback: a model cannot fall back to itself"#,
            r#"17:12: models.c.fallback: model "d" has a fallback of its own (fallbacks do not chain)"#,
            "28:12: models.e.fallback: has no effect without api_key_env (the fallback is used \
             when that variable is unset or empty)",
            r#"34:12: models.f.fallback: model "e" has a fallback of its own (fallbacks do not chain)"#,
        ]
    );
}

#[test]
fn invalid_urls() {
    let source = r#"[models.a]
provider = "openai"
model = "x"
base_url = "api.openai.com/v1"

[models.b]
provider = "anthropic"
model = "x"
base_url = "ftp://user:hunter2@example.com/"

[tools.t]
description = "d"
url = "http://"
parameters = { type = "object" }
"#;
    let all = problems(source);
    assert_eq!(
        all,
        vec![
            "4:12: models.a.base_url: invalid url: relative URL without a base",
            r#"9:12: models.b.base_url: must be an http or https url, not "ftp:""#,
            "13:7: tools.t.url: invalid url: empty host",
        ]
    );
    assert!(all.iter().all(|p| !p.contains("hunter2")), "urls may hold credentials");
}

#[test]
fn base_url_on_a_mock_model() {
    assert_eq!(
        problem("[models.m]\nprovider = \"mock\"\nmodel = \"m\"\nbase_url = \"http://localhost\"\n"),
        "4:12: models.m.base_url: not allowed for a mock model (it makes no requests)"
    );
}

#[test]
fn unknown_provider_and_method() {
    let source = r#"[models.m]
provider = "opneai"
model = "m"

[tools.t]
description = "d"
url = "http://localhost/t"
method = "get"
parameters = { type = "object" }
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"2:12: models.m.provider: unknown provider "opneai" (expected openai, anthropic or mock)"#,
            r#"8:10: tools.t.method: unknown method "get" (expected GET, POST, PUT, PATCH or DELETE)"#,
        ]
    );
}

#[test]
fn bad_ids() {
    let source = r#"[models."my model"]
provider = "mock"
model = "m"

[tools."get.weather"]
description = "d"
url = "http://localhost/w"
parameters = { type = "object" }

[agents.""]
instructions = "x"
model = "my model"
"#;
    assert_eq!(
        problems(source),
        vec![
            r#"1:9: models."my model": invalid model id "my model" (use letters, digits, "_", "." and "-")"#,
            "5:8: tools.\"get.weather\": invalid tool id \"get.weather\" (a tool id is the function \
             name the model sees: letters, digits, \"_\" and \"-\", at most 64 characters)",
            r#"10:9: agents."": invalid agent id "" (use letters, digits, "_", "." and "-")"#,
        ]
    );
}

#[test]
fn out_of_range_numbers() {
    let source = r#"[server]
body_limit_bytes = 0
shutdown_grace_secs = -1

[models.m]
provider = "mock"
model = "m"
connect_timeout_ms = 0
max_retries = 101

[tools.t]
description = "d"
url = "http://localhost/t"
parameters = { type = "object" }
timeout_ms = 86_400_001

[agents.a]
instructions = "x"
model = "m"
max_steps = 51
temperature = 2.5
max_output_tokens = 0

[agents.b]
instructions = "x"
model = "m"
max_steps = 0
temperature = -0.1
max_output_tokens = 4294967296
"#;
    assert_eq!(
        problems(source),
        vec![
            "2:20: server.body_limit_bytes: must be at least 1, got 0",
            "3:23: server.shutdown_grace_secs: must be between 0 and 86400, got -1",
            "8:22: models.m.connect_timeout_ms: must be between 1 and 86400000, got 0",
            "9:15: models.m.max_retries: must be between 0 and 100, got 101",
            "15:14: tools.t.timeout_ms: must be between 1 and 86400000, got 86400001",
            "20:13: agents.a.max_steps: must be between 1 and 50, got 51",
            "21:15: agents.a.temperature: must be between 0.0 and 2.0, got 2.5",
            "22:21: agents.a.max_output_tokens: must be between 1 and 4294967295, got 0",
            "27:13: agents.b.max_steps: must be between 1 and 50, got 0",
            "28:15: agents.b.temperature: must be between 0.0 and 2.0, got -0.1",
            "29:21: agents.b.max_output_tokens: must be between 1 and 4294967295, got 4294967296",
        ]
    );
}

#[test]
fn nan_temperature_is_out_of_range() {
    assert_eq!(
        problem(&format!("{BASE}temperature = nan\n")),
        "9:15: agents.a.temperature: must be between 0.0 and 2.0, got nan"
    );
}

#[test]
fn invalid_listen_address() {
    assert_eq!(
        problem("[server]\nlisten = \"localhost:8080\"\n"),
        r#"2:10: server.listen: invalid socket address "localhost:8080" (expected ip:port, e.g. 127.0.0.1:8080)"#
    );
}

#[test]
fn empty_instructions_model_name_and_agent_name() {
    let source = r#"[models.m]
provider = "mock"
model = ""

[agents.a]
name = ""
instructions = """
   
"""
model = "m"
"#;
    assert_eq!(
        problems(source),
        vec![
            "3:9: models.m.model: must not be empty",
            "6:8: agents.a.name: must not be empty",
            "7:16: agents.a.instructions: must not be empty",
        ]
    );
}

#[test]
fn api_key_env_must_be_a_variable_name_and_is_never_echoed() {
    let message = problem("[models.m]\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"sk-live-abc123\"\n");
    assert_eq!(
        message,
        "4:15: models.m.api_key_env: must be the name of an environment variable (letters, \
         digits and \"_\", not starting with a digit), not the key itself"
    );
    assert!(!message.contains("sk-live"));
}

#[test]
fn header_problems_never_show_values() {
    let source = r#"[models.m]
provider = "openai"
model = "m"
headers = { "bad name" = "v", "x-ok" = "line1\nsecret-value", "X-Dup" = "a", "x-dup" = "b", "x-n" = 1 }
"#;
    let all = problems(source);
    assert_eq!(
        all,
        vec![
            r#"4:13: models.m.headers."bad name": invalid header name (use letters, digits and !#$%&'*+-.^_`|~)"#,
            "4:40: models.m.headers.x-ok: invalid header value (only visible ascii characters, \
             spaces and tabs are allowed)",
            r#"4:78: models.m.headers.x-dup: header "x-dup" is set more than once (header names ignore case)"#,
            "4:101: models.m.headers.x-n: expected a string, found an integer",
        ]
    );
    assert!(all.iter().all(|p| !p.contains("secret-value")));
}

#[test]
fn bad_store_telemetry_and_pricing_values_are_reported() {
    let all = problems(
        "[store]\nclickhouse_url = \"ftp://x\"\nclickhouse_database = \"a;b\"\n\n[telemetry]\notlp_protocol = \"udp\"\n\n[[pricing]]\npattern = \"x\"\noutput_per_million = -1\n",
    );
    let joined = all.join("\n");
    assert!(joined.contains("2:18: store.clickhouse_url"), "{joined}");
    assert!(joined.contains("3:23: store.clickhouse_database"), "{joined}");
    assert!(joined.contains("6:17: telemetry.otlp_protocol"), "{joined}");
    assert!(joined.contains("input_per_million"), "missing required key: {joined}");
    assert!(joined.contains("10:22: pricing[0].output_per_million") || joined.contains("pricing"), "{joined}");
}

#[test]
fn unknown_writer_policy() {
    // A problem in the value does not hide one in another key of the section.
    let source = "[store]\nwriter_policy = \"lazy\"\nwriter_nicee = 1\n";
    let found = problems(source);
    assert_eq!(found[0], r#"2:17: store.writer_policy: unknown policy "lazy" (use "auto", "normal" or "idle")"#);
    assert!(found.len() == 2 && found[1].starts_with("3:1: store.writer_nicee"), "{found:?}");
}
