//! Files that load: every field, defaults, file order, `load` from disk.

use std::net::SocketAddr;
use std::time::Duration;

use glassbox_config::{
    AgentConfig, ConfigError, HttpMethod, HttpToolConfig, ModelConfig, ProviderKind, ServerConfig, load, parse,
};
use serde_json::json;

use crate::{BASE, config, problems};

const FULL: &str = r#"
# Every key set.
[server]
listen = "0.0.0.0:9090"
body_limit_bytes = 2_097_152
shutdown_grace_secs = 3

[models.gpt]
provider = "openai"
model = "gpt-4o-mini"
base_url = "http://${HOST}:8000/v1"
api_key_env = "OPENAI_API_KEY"
fallback = "mock"
connect_timeout_ms = 1000
first_byte_timeout_ms = 2000
total_timeout_ms = 3000
max_retries = 0
headers = { "x-extra" = "v", Authorization = "Bearer ${TOKEN}" }

[models.claude]
provider = "anthropic"
model = "claude-sonnet-4-5"

[models.mock]
provider = "mock"
model = "echo"

[tools.get_weather]
description = "Current weather for a city"
url = "http://127.0.0.1:9000/weather"
method = "GET"
parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
timeout_ms = 2500
headers = { "x-api-key" = "k" }

[agents.assistant]
name = "Assistant"
description = "Answers questions"
instructions = "You are helpful."
model = "gpt"
tools = ["get_weather"]
max_steps = 7
temperature = 0.2
max_output_tokens = 1024
output_schema = { type = "object", properties = { answer = { type = "string" }, score = { type = "number", minimum = 0.5 } } }
"#;

#[test]
fn full_file_round_trip() {
    let config = config(FULL);

    assert_eq!(
        config.server,
        ServerConfig {
            listen: "0.0.0.0:9090".parse::<SocketAddr>().unwrap(),
            body_limit_bytes: 2 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(3),
            ..ServerConfig::default()
        }
    );

    assert_eq!(
        config.models,
        vec![
            ModelConfig {
                id: "gpt".into(),
                provider: ProviderKind::OpenAi,
                model: "gpt-4o-mini".into(),
                base_url: Some("http://127.0.0.1:8000/v1".into()),
                api_key_env: Some("OPENAI_API_KEY".into()),
                fallback: Some("mock".into()),
                connect_timeout: Duration::from_millis(1000),
                first_byte_timeout: Duration::from_millis(2000),
                total_timeout: Duration::from_millis(3000),
                max_retries: 0,
                headers: vec![("x-extra".into(), "v".into()), ("Authorization".into(), "Bearer secret-token".into()),],
            },
            ModelConfig {
                id: "claude".into(),
                provider: ProviderKind::Anthropic,
                model: "claude-sonnet-4-5".into(),
                base_url: Some("https://api.anthropic.com/v1".into()),
                api_key_env: None,
                fallback: None,
                connect_timeout: Duration::from_millis(5000),
                first_byte_timeout: Duration::from_millis(60_000),
                total_timeout: Duration::from_millis(300_000),
                max_retries: 2,
                headers: vec![],
            },
            ModelConfig {
                id: "mock".into(),
                provider: ProviderKind::Mock,
                model: "echo".into(),
                base_url: None,
                api_key_env: None,
                fallback: None,
                connect_timeout: Duration::from_millis(5000),
                first_byte_timeout: Duration::from_millis(60_000),
                total_timeout: Duration::from_millis(300_000),
                max_retries: 2,
                headers: vec![],
            },
        ]
    );

    assert_eq!(
        config.tools,
        vec![HttpToolConfig {
            id: "get_weather".into(),
            description: "Current weather for a city".into(),
            url: "http://127.0.0.1:9000/weather".into(),
            method: HttpMethod::Get,
            parameters: json!({
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }),
            timeout: Duration::from_millis(2500),
            headers: vec![("x-api-key".into(), "k".into())],
        }]
    );

    assert_eq!(
        config.agents,
        vec![AgentConfig {
            id: "assistant".into(),
            name: "Assistant".into(),
            description: "Answers questions".into(),
            instructions: "You are helpful.".into(),
            model: "gpt".into(),
            tools: vec!["get_weather".into()],
            max_steps: 7,
            temperature: Some(0.2),
            max_output_tokens: Some(1024),
            output_schema: Some(json!({
                "type": "object",
                "properties": {
                    "answer": {"type": "string"},
                    "score": {"type": "number", "minimum": 0.5},
                },
            })),
            capture: glassbox_config::CapturePolicy::Full,
            pipeline: Default::default(),
        }]
    );

    assert_eq!(config.model("claude").map(|m| m.provider), Some(ProviderKind::Anthropic));
    assert_eq!(config.tool("get_weather").map(|t| t.method), Some(HttpMethod::Get));
    assert_eq!(config.agent("assistant").map(|a| a.name.as_str()), Some("Assistant"));
    assert!(config.model("nope").is_none());
    assert!(config.tool("nope").is_none());
    assert!(config.agent("nope").is_none());
}

#[test]
fn empty_file_is_all_defaults() {
    let config = config("");
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(config.server.body_limit_bytes, 1024 * 1024);
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(10));
    assert!(config.models.is_empty() && config.tools.is_empty() && config.agents.is_empty());
}

#[test]
fn defaults_of_models_tools_and_agents() {
    let config = config(&format!(
        r#"{BASE}
[models.oai]
provider = "openai"
model = "gpt-4o"

[tools.now]
description = "The time"
url = "https://tools.internal/now"
parameters = {{ type = "object" }}
"#
    ));
    let oai = config.model("oai").unwrap();
    assert_eq!(oai.base_url.as_deref(), Some("https://api.openai.com/v1"));
    assert_eq!(oai.connect_timeout, Duration::from_millis(5000));
    assert_eq!(oai.first_byte_timeout, Duration::from_millis(60_000));
    assert_eq!(oai.total_timeout, Duration::from_millis(300_000));
    assert_eq!(oai.max_retries, 2);
    assert!(oai.headers.is_empty() && oai.api_key_env.is_none() && oai.fallback.is_none());

    let now = config.tool("now").unwrap();
    assert_eq!(now.method, HttpMethod::Post);
    assert_eq!(now.timeout, Duration::from_millis(10_000));
    assert!(now.headers.is_empty());

    let agent = config.agent("a").unwrap();
    assert_eq!(agent.name, "a");
    assert_eq!(agent.description, "");
    assert!(agent.tools.is_empty());
    assert_eq!(agent.max_steps, 5);
    assert_eq!(agent.temperature, None);
    assert_eq!(agent.max_output_tokens, None);
    assert_eq!(agent.output_schema, None);
}

#[test]
fn file_order_is_kept_not_alphabetical() {
    let config = config(
        r#"
[models.zeta]
provider = "mock"
model = "m"
[models.alpha]
provider = "mock"
model = "m"
[models.mid]
provider = "mock"
model = "m"

[tools.z_tool]
description = ""
url = "http://localhost/z"
parameters = { type = "object" }
[tools.a_tool]
description = ""
url = "http://localhost/a"
parameters = { type = "object" }

[agents.second]
instructions = "x"
model = "zeta"
tools = ["z_tool", "a_tool"]
[agents.first]
instructions = "x"
model = "alpha"

[models.last]
provider = "mock"
model = "m"

[models.gpt]
provider = "openai"
model = "m"
headers = { zz = "1", aa = "2", mm = "3" }
"#,
    );
    let ids = |ids: Vec<&str>| ids.join(",");
    assert_eq!(ids(config.models.iter().map(|m| m.id.as_str()).collect()), "zeta,alpha,mid,last,gpt");
    assert_eq!(ids(config.tools.iter().map(|t| t.id.as_str()).collect()), "z_tool,a_tool");
    assert_eq!(ids(config.agents.iter().map(|a| a.id.as_str()).collect()), "second,first");
    assert_eq!(config.agent("second").unwrap().tools, vec!["z_tool", "a_tool"]);
    let header_names: Vec<&str> = config.model("gpt").unwrap().headers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(header_names, vec!["zz", "aa", "mm"]);
}

#[test]
fn inline_and_dotted_tables_are_the_same_file() {
    let config = config(
        r#"
models = { m = { provider = "mock", model = "echo" } }
agents.a.instructions = "hi"
agents.a.model = "m"
agents.a.temperature = 1
"#,
    );
    assert_eq!(config.models[0].id, "m");
    assert_eq!(config.agents[0].temperature, Some(1.0));
}

#[test]
fn ids_may_use_dots_and_dashes() {
    let config = config(
        r#"
[models."gpt-4.1"]
provider = "mock"
model = "m"
[agents."support.v2"]
instructions = "x"
model = "gpt-4.1"
"#,
    );
    assert_eq!(config.agents[0].id, "support.v2");
    assert_eq!(config.agents[0].model, "gpt-4.1");
}

#[test]
fn numbers_at_the_edges_of_their_ranges() {
    let config = config(
        r#"
[server]
shutdown_grace_secs = 0
body_limit_bytes = 0x10
[models.m]
provider = "mock"
model = "m"
max_retries = 100
connect_timeout_ms = 1
total_timeout_ms = 86_400_000
[agents.a]
instructions = "x"
model = "m"
max_steps = 50
temperature = 2.0
max_output_tokens = 4294967295
[agents.b]
instructions = "x"
model = "m"
max_steps = 1
temperature = 0
max_output_tokens = 1
"#,
    );
    assert_eq!(config.server.body_limit_bytes, 16);
    assert_eq!(config.server.shutdown_grace, Duration::ZERO);
    assert_eq!(config.agents[0].max_output_tokens, Some(u32::MAX));
    assert_eq!(config.agents[1].temperature, Some(0.0));
}

#[test]
fn load_reads_the_file_and_names_it_in_diagnostics() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("glassbox-config-load");
    std::fs::create_dir_all(&dir).unwrap();

    let good = dir.join("good.toml");
    std::fs::write(&good, BASE).unwrap();
    assert_eq!(load(&good).unwrap().agents[0].id, "a");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = 5\n").unwrap();
    let error = load(&bad).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}:2:10: server.listen: expected a string, found an integer", bad.display())
    );

    let missing = dir.join("missing.toml");
    match load(&missing) {
        Err(ConfigError::Read { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    assert_eq!(load(&missing).unwrap_err().to_string(), format!("cannot read {}", missing.display()));
}

#[test]
fn parse_uses_only_the_given_environment() {
    let source = "[server]\nlisten = \"${GLASSBOX_CONFIG_TEST_LISTEN:-127.0.0.1:1}\"\n";
    let config =
        parse(source, "x", &|name| (name == "GLASSBOX_CONFIG_TEST_LISTEN").then(|| "127.0.0.1:2".to_owned())).unwrap();
    assert_eq!(config.server.listen.port(), 2);
    assert_eq!(problems("[server]\nlisten = \"${NOT_SET_ANYWHERE}\"\n").len(), 1);
}

#[test]
fn example_config_of_the_repository_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../glassbox.toml");
    let source = std::fs::read_to_string(&path).unwrap();
    // No variable set: every `${VAR:-default}` takes its default.
    let config = parse(&source, "glassbox.toml", &|_| None).unwrap_or_else(|error| panic!("{error}"));
    assert!(!config.agents.is_empty());
}

#[test]
fn store_telemetry_pricing_and_capture_sections() {
    let text = r#"
[store]
clickhouse_url = "http://127.0.0.1:8123"
clickhouse_database = "gb_prod"
clickhouse_password_env = "CH_PASSWORD"
clickhouse_cluster = "main"
spool_dir = "/var/spool/glassbox"
flush_interval_ms = 250
batch_rows = 5000
queue_max_bytes = 8388608
span_ttl_days = 7
writer_nice = 5
writer_policy = "idle"

[telemetry]
service_name = "glassbox-eu"
otlp_endpoint = "http://127.0.0.1:4318"
otlp_protocol = "http/protobuf"

[[pricing]]
pattern = "my-model*"
input_per_million = 1
output_per_million = 2.5

[[pricing]]
pattern = "other"
provider = "openai"
input_per_million = 0.5
output_per_million = 1.5
cached_input_per_million = 0.25

[models.m]
provider = "mock"
model = "mock-echo"

[agents.a]
instructions = "x"
model = "m"
capture = "redacted"
"#;
    let config = glassbox_config::parse(text, "t.toml", &|_| None).unwrap();
    let clickhouse = config.store.clickhouse.as_ref().unwrap();
    assert_eq!(clickhouse.url, "http://127.0.0.1:8123");
    assert_eq!(clickhouse.database, "gb_prod");
    assert_eq!(clickhouse.password_env.as_deref(), Some("CH_PASSWORD"));
    assert_eq!(clickhouse.cluster.as_deref(), Some("main"));
    assert_eq!(config.store.spool_dir, std::path::PathBuf::from("/var/spool/glassbox"));
    assert_eq!(config.store.flush_interval, std::time::Duration::from_millis(250));
    assert_eq!(config.store.batch_rows, Some(5000));
    assert_eq!(config.store.queue_max_bytes, 8 << 20);
    assert_eq!(config.store.span_ttl_days, 7);
    assert_eq!(config.store.writer_nice, 5);
    assert_eq!(config.store.writer_policy, glassbox_config::WriterPolicy::Idle, "writer_policy = \"idle\"");
    let otlp = config.telemetry.otlp.as_ref().unwrap();
    assert_eq!(otlp.protocol, glassbox_config::OtlpProtocol::HttpProtobuf);
    assert_eq!(config.telemetry.service_name, "glassbox-eu");
    assert_eq!(config.pricing.len(), 2);
    assert_eq!(config.pricing[0].input_per_million, 1.0);
    assert_eq!(config.pricing[1].cached_input_per_million, Some(0.25));
    assert_eq!(config.agents[0].capture, glassbox_config::CapturePolicy::Redacted);
}

#[test]
fn store_defaults_to_embedded_sqlite() {
    let config = glassbox_config::parse("[models.m]\nprovider = \"mock\"\nmodel = \"mock-echo\"\n", "t.toml", &|_| None).unwrap();
    assert!(config.store.clickhouse.is_none());
    assert_eq!(config.store.sqlite_path, std::path::PathBuf::from(".glassbox/glassbox.db"));
    assert_eq!(config.telemetry.otlp, None);
    assert_eq!(config.store.batch_rows, None, "unset: each store's own batch size");
    assert_eq!(config.store.writer_policy, glassbox_config::WriterPolicy::Auto, "unset: auto");
}

#[test]
fn each_writer_policy_is_read() {
    for (text, policy) in [
        ("auto", glassbox_config::WriterPolicy::Auto),
        ("normal", glassbox_config::WriterPolicy::Normal),
        ("idle", glassbox_config::WriterPolicy::Idle),
    ] {
        let source = format!("[store]\nwriter_policy = \"{text}\"\n");
        let config = glassbox_config::parse(&source, "t.toml", &|_| None).unwrap();
        assert_eq!(config.store.writer_policy, policy, "writer_policy = {text:?}");
    }
}

#[test]
fn server_read_timeouts_are_read_in_milliseconds() {
    let config = glassbox_config::parse("[server]\nheader_read_timeout_ms = 1500\nbody_read_timeout_ms = 2500\n", "t.toml", &|_| None)
        .unwrap();
    assert_eq!(config.server.header_read_timeout, Duration::from_millis(1500));
    assert_eq!(config.server.body_read_timeout, Duration::from_millis(2500));
    let defaults = glassbox_config::parse("", "t.toml", &|_| None).unwrap();
    assert_eq!(defaults.server.header_read_timeout, Duration::from_secs(30));
    assert_eq!(defaults.server.body_read_timeout, Duration::from_secs(30));
}
