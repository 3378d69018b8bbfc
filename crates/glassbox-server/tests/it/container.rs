//! The deployment files: docker-compose.yml validates with every profile (Debian's
//! `docker-compose config`, which needs no engine) and mounts only files that exist; the
//! Prometheus config passes `promtool check config`; the collector and Grafana provisioning
//! files parse as YAML; the Dockerfile builds in stages and runs as an unprivileged user.

use std::path::Path;
use std::process::Command;

use crate::openai_facade::{python, repo_path};

fn run(program: &str, args: &[&str], install_hint: &str) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}): {install_hint}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_compose_file_validates_with_every_profile() {
    let hint = "install Debian's `docker-compose` package (./tests/run.sh --setup-only does)";
    let resolved = run(
        "docker-compose",
        &["-f", "docker-compose.yml", "--profile", "otel", "--profile", "grafana", "config"],
        hint,
    );
    for service in ["clickhouse:", "glassbox:", "otel-collector:", "prometheus:", "grafana:"] {
        assert!(resolved.contains(&format!("\n  {service}\n")), "service {service} missing:\n{resolved}");
    }
    // `config` resolves bind mounts to absolute paths: each must exist in the repository.
    let mut mounts = 0;
    for line in resolved.lines() {
        let Some(spec) = line.trim().strip_prefix("- /") else { continue };
        let source = format!("/{}", spec.split(':').next().unwrap_or_default());
        assert!(Path::new(&source).exists(), "compose mounts {source}, which does not exist");
        mounts += 1;
    }
    assert_eq!(mounts, 4, "collector config, Prometheus config, Grafana provisioning and dashboards:\n{resolved}");
    assert!(resolved.contains("dashboards/grafana:/var/lib/grafana/dashboards"), "{resolved}");
    // Without a profile only ClickHouse and Glassbox start.
    for (service, profile) in [
        ("clickhouse", None),
        ("glassbox", None),
        ("otel-collector", Some("otel")),
        ("prometheus", Some("grafana")),
        ("grafana", Some("grafana")),
    ] {
        let block = service_block(&resolved, service);
        match profile {
            Some(profile) => assert!(
                block.contains(&format!("profiles:\n    - {profile}\n")),
                "{service} needs profile {profile}:\n{block}"
            ),
            None => assert!(!block.contains("profiles:"), "{service} starts by default:\n{block}"),
        }
    }
}

/// The lines of one service in `docker-compose config` output (services are indented by two).
fn service_block<'a>(resolved: &'a str, service: &str) -> &'a str {
    let header = format!("\n  {service}:\n");
    let start = resolved.find(&header).unwrap_or_else(|| panic!("no service {service}")) + header.len();
    let rest = &resolved[start..];
    let end = rest
        .match_indices('\n')
        .find(|(index, _)| {
            let next = &rest[index + 1..];
            !next.starts_with("   ") && !next.starts_with("  -")
        })
        .map_or(rest.len(), |(index, _)| index + 1);
    &rest[..end]
}

#[test]
fn the_prometheus_collector_and_grafana_configs_are_valid() {
    run("promtool", &["check", "config", "deploy/prometheus/prometheus.yml"], "install Debian's `prometheus` package");
    let check = r#"
import sys, yaml
collector = yaml.safe_load(open("deploy/otel/collector.yaml"))
pipeline = collector["service"]["pipelines"]["traces"]
for kind in ("receivers", "processors", "exporters"):
    for name in pipeline[kind]:
        assert name in collector[kind], f"{kind}: {name} is used but not configured"
sources = yaml.safe_load(open("deploy/grafana/provisioning/datasources/glassbox.yaml"))
types = sorted(source["type"] for source in sources["datasources"])
assert types == ["grafana-clickhouse-datasource", "prometheus"], types
dashboards = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/glassbox.yaml"))
assert dashboards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
print("ok")
"#;
    let output = Command::new(python()).args(["-c", check]).current_dir(repo_path("")).output().unwrap();
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged() {
    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile.lines().filter(|line| line.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage: {stages:?}");
    assert!(stages[0].contains(" AS build") && stages[1].contains(" AS runtime"), "{stages:?}");
    let runtime = dockerfile.split(stages[1]).nth(1).unwrap();
    assert!(runtime.contains("COPY --from=build"), "the runtime stage takes only the binary from the build");
    let user = runtime.lines().rev().find_map(|line| line.strip_prefix("USER ")).expect("the runtime stage sets USER");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    let dockerignore = std::fs::read_to_string(repo_path(".dockerignore")).unwrap();
    assert!(
        dockerignore.lines().any(|line| line.trim_matches('/') == "target"),
        "the build context leaves out target/"
    );
}
