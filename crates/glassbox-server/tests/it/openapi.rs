//! `GET /openapi.json`: every route the real router serves is documented (and nothing else
//! is), and the document validates against the OpenAPI 3.1 schema (`openapi-spec-validator`
//! in the test venv).
//!
//! The routes come from the router itself, not from a list kept next to the test: axum has no
//! route listing API, but its `Debug` output holds the route table (paths by route id, and
//! each method router's `Allow` header). A route added anywhere — by any module merged into
//! `glassbox_server::router`, or the workflow routes `router_with_workflows` adds — shows up
//! here, and fails the test until it is documented.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use glassbox_server::workflow_host::{WorkflowHost, WorkflowLimits};
use glassbox_server::{AgentRegistry, HttpOptions};
use glassbox_store::Backend;
use glassbox_store::sqlite::{SqliteBackend, SqliteSettings};
use serde_json::Value;

use crate::helpers::{BASE_CONFIG, spawn_app};
use crate::openai_facade::run_python;

/// `path -> methods` as the router with workflows serves them (the workflow routes are served
/// only when the server has a workflow host, on an empty SQLite run store here). A service
/// nested without a method router (`nest_service`) is listed as `ANY`.
async fn served_routes() -> BTreeMap<String, BTreeSet<String>> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteBackend::open(SqliteSettings { path: dir.path().join("glassbox.db") }).await.unwrap());
    store.migrate().await.unwrap();
    let host = WorkflowHost::new(Vec::new(), store, WorkflowLimits::default());
    let router = glassbox_server::router_with_workflows(AgentRegistry::default(), host, HttpOptions::default());
    let debug = format!("{router:?}");
    // Only the path router: the fallback router holds axum's own catch-all entries.
    let path_router = debug.split("fallback_router:").next().unwrap_or_default();
    let endpoints =
        regex::Regex::new(r"RouteId\((\d+)\): (MethodRouter\(MethodRouter \{.*?allow_header: ([^}]*?) \}\)|Route)")
            .unwrap();
    let allow = regex::Regex::new(r#"Bytes\(b"([^"]*)"\)"#).unwrap();
    let paths = regex::Regex::new(r#"RouteId\((\d+)\): "([^"]+)""#).unwrap();
    let mut methods_by_id = BTreeMap::new();
    for captures in endpoints.captures_iter(path_router) {
        let id = captures[1].to_owned();
        let methods: BTreeSet<String> = match captures.get(3) {
            Some(header) => allow
                .captures(header.as_str())
                .map(|allowed| allowed[1].split(',').filter(|method| !method.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            None => BTreeSet::from(["ANY".to_owned()]),
        };
        methods_by_id.insert(id, methods);
    }
    let node = path_router.split("node: Node").nth(1).unwrap_or_default();
    let mut routes = BTreeMap::new();
    for captures in paths.captures_iter(node) {
        let mut methods = methods_by_id.get(&captures[1]).cloned().unwrap_or_default();
        // axum answers HEAD for every GET route; OpenAPI documents the GET.
        if methods.contains("GET") {
            methods.remove("HEAD");
        }
        routes.insert(captures[2].to_owned(), methods);
    }
    assert!(
        routes.len() >= 10
            && routes.contains_key("/api/agents/{agent_id}/generate")
            && routes.contains_key("/api/workflows/{workflow_id}/runs/{run_id}/cancel"),
        "could not read the route table from the router's Debug output (did axum change it?):\n{debug}"
    );
    routes
}

fn documented_routes(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|key| {
                    ["get", "put", "post", "delete", "options", "head", "patch", "trace"].contains(&key.as_str())
                })
                .map(|method| method.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn every_route_is_documented_and_the_spec_is_valid_openapi_3_1() {
    let app = spawn_app(BASE_CONFIG).await;
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let text = response.text().await.unwrap();
    let spec: Value = serde_json::from_str(&text).unwrap();
    assert!(spec["openapi"].as_str().is_some_and(|version| version.starts_with("3.1")), "{}", spec["openapi"]);

    let served = served_routes().await;
    let documented = documented_routes(&spec);
    let mut problems = Vec::new();
    for (path, methods) in &served {
        for method in methods {
            let is_documented = match method.as_str() {
                // A nested service: some documented path must live under it.
                "ANY" => {
                    let prefix = path.split("/{*").next().unwrap_or(path);
                    documented.keys().any(|documented_path| documented_path.starts_with(prefix))
                }
                _ => documented.get(path).is_some_and(|documented_methods| documented_methods.contains(method)),
            };
            if !is_documented {
                problems.push(format!(
                    "{method} {path} is served but not in /openapi.json: add #[utoipa::path] to its handler and a \
                     routes!(..) line in crates/glassbox-server/src/api/openapi.rs"
                ));
            }
        }
    }
    for (path, methods) in &documented {
        for method in methods {
            if !served
                .get(path)
                .is_some_and(|served_methods| served_methods.contains(method) || served_methods.contains("ANY"))
            {
                problems.push(format!("{method} {path} is documented but not served"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every operation says what it answers, and every schema it names exists.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["responses"]["200"].is_object(), "{method} {path} documents its 200 answer");
        }
    }
    for reference in regex::Regex::new(r##""\$ref":"#/components/schemas/([^"]+)""##).unwrap().captures_iter(&text) {
        assert!(spec["components"]["schemas"][&reference[1]].is_object(), "missing schema {}", &reference[1]);
    }

    // The OpenAPI 3.1 schema itself, checked by openapi-spec-validator.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let verdict = run_python("validate_openapi.py", &[file.to_str().unwrap()]).await;
    assert_eq!(verdict.trim(), "valid 3.1.0");
}

#[tokio::test]
async fn the_docs_page_lists_every_documented_operation() {
    let app = spawn_app(BASE_CONFIG).await;
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>"));
    for (path, methods) in documented_routes(&spec) {
        for method in methods {
            let anchor = format!("id=\"{}-{path}\"", method.to_lowercase());
            assert!(page.contains(&anchor), "{method} {path} missing from /docs");
        }
    }
    for name in spec["components"]["schemas"].as_object().unwrap().keys() {
        assert!(page.contains(&format!("id=\"schema-{name}\"")), "schema {name} missing from /docs");
    }
    assert!(!page.contains("<script"), "a static page");
}
