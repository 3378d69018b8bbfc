//! Every page over HTTP on seeded data: the figures match the data, hostile text renders
//! inert, bad filters answer 400 naming the filter, and access is enforced.

use glassbox_server::dashboard::format;
use std::sync::Arc;

use glassbox_config::{BudgetConfig, KeyConfig, KeySecret};
use glassbox_server::access::secret;
use glassbox_server::dashboard::{Access, CONTENT_SECURITY_POLICY_VALUE, KeyViewers};
use glassbox_store::pricing::PricingTable;

use super::seed::{self, HOSTILE_AGENT, HOSTILE_MODEL, HOSTILE_TENANT, HOSTILE_TRACE_ID};
use super::{ADMIN_TOKEN, DashboardApp, Kind, spawn_seeded};

fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn figures_match_the_data(app: &DashboardApp) {
    let expect = &app.expect;
    // Overview.
    let response = app.get("/dashboard").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-security-policy"], CONTENT_SECURITY_POLICY_VALUE);
    let body = response.text().await.unwrap();
    assert!(body.contains(&format!(r#"id="stat-requests">{}<"#, expect.traces)), "requests on the overview");
    assert!(
        body.contains(&format!(r#"id="stat-cost">{}<"#, format::usd(expect.cost_nano_usd))),
        "cost on the overview"
    );
    assert!(
        body.contains(&format!(r#"id="stat-error-rate">{}<"#, format::percent(expect.error_traces, expect.traces)))
    );
    assert!(body.contains(&format!(r#"id="stat-p50">{}<"#, format::millis(expect.duration_quantile_ms(0.5)))), "p50");
    assert!(body.contains(&format!(r#"id="stat-p99">{}<"#, format::millis(expect.duration_quantile_ms(0.99)))), "p99");
    assert!(body.contains(&format!(r#"id="stat-tokens">{} / {}<"#, expect.input_tokens, expect.output_tokens)));
    assert!(expect.blocked > 0 && expect.refused > 0, "the seed has blocks and refusals");
    assert!(body.contains(&format!(r#"id="stat-blocked">{}<"#, expect.blocked)), "guardrail blocks");
    assert!(body.contains(&format!(r#"id="stat-refused">{}<"#, expect.refused)), "refused requests");

    // Traces: newest first, 50 a page, a cursor to the next page.
    let newest = expect.newest_first();
    let (status, body) = app.page("/dashboard/traces").await;
    assert_eq!(status, 200);
    let listed: Vec<&str> =
        body.match_indices("data-trace-id=\"").map(|(at, m)| &body[at + m.len()..at + m.len() + 32]).collect();
    assert_eq!(listed, newest[..50].iter().map(String::as_str).collect::<Vec<_>>());
    let next = body.split("id=\"next-page\"").next().and_then(|head| head.rsplit("href=\"").next()).unwrap();
    let next = next.trim_end_matches(['"', ' ']).replace("&#38;", "&").replace("&amp;", "&");
    let (status, body) = app.page(&next).await;
    assert_eq!(status, 200, "{next}");
    assert!(
        body.contains(&format!("data-trace-id=\"{}\"", newest[50])),
        "the next page starts after the first: {next}"
    );
    assert!(!body.contains(&format!("data-trace-id=\"{}\"", newest[49])));

    // Online eval scores: a badge in the traces table, a row on the trace page.
    let scored = &app.pages.scored_trace;
    let (status, body) = app.page(&format!("/dashboard/traces?range=7d&trace_id={scored}")).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"<span class="score pass""#) && body.contains("contains 1.00</span>"), "score badge");
    let (status, body) = app.page(&format!("/dashboard/traces/{scored}")).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"id="scores-table""#), "scores on the trace page");
    assert!(body.contains(r#"<td>contains</td>"#) && body.contains(r#"<span class="score pass">pass</span>"#));
    assert!(body.contains(r#"<td class="num">1.00</td>"#));

    // Filters: agent and status.
    let agent = seed::AGENTS[1];
    let (status, body) = app.page(&format!("/dashboard/traces?agent={agent}&status=error")).await;
    assert_eq!(status, 200);
    assert_eq!(body.matches("class=\"trace-row\"").count() as u64, expect.error_traces_by_agent[agent]);

    // Filter: API key (each tenant's requests carry its own key): its first page, and none for
    // an unknown key.
    let tenant = seed::TENANTS[1];
    let of_tenant: std::collections::BTreeSet<&str> =
        expect.by_tenant[tenant].trace_ids.iter().map(String::as_str).collect();
    let wanted: Vec<&str> = newest.iter().map(String::as_str).filter(|id| of_tenant.contains(id)).take(50).collect();
    assert!(wanted.len() >= 5, "the seed has traces of {tenant}");
    let key = seed::api_key_of(tenant);
    let (status, body) = app.page(&format!("/dashboard/traces?api_key={key}")).await;
    assert_eq!(status, 200);
    let listed: Vec<&str> =
        body.match_indices("data-trace-id=\"").map(|(at, m)| &body[at + m.len()..at + m.len() + 32]).collect();
    assert_eq!(listed, wanted, "the traces of {key}");
    assert!(body.contains(&format!(r#"name="api_key" value="{key}""#)), "the form keeps the key");
    let (status, body) = app.page("/dashboard/traces?api_key=key_nobody").await;
    assert_eq!(status, 200);
    assert_eq!(body.matches("class=\"trace-row\"").count(), 0, "no trace of an unknown key");

    // One trace.
    let trace_id = &newest[0];
    let (status, body) = app.page(&format!("/dashboard/traces/{trace_id}")).await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!(r#"id="trace-span-count">{}<"#, expect.spans_by_trace[trace_id])));
    assert!(body.contains(&format!(r#"id="trace-cost">{}<"#, format::usd(expect.cost_by_trace[trace_id]))));
    assert!(body.contains("question 0 for"), "the captured prompt is shown");

    // Cost and its CSV.
    let (status, body) = app.page("/dashboard/cost").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!(r#"id="cost-total">{}<"#, format::usd(expect.usage_cost_nano_usd))));
    assert!(body.contains(&format!(r#"id="cost-calls">{}<"#, expect.calls)));
    let response = app.get("/dashboard/cost.csv?by=model").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("glassbox-cost-by-model.csv"));
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("model,calls,input_tokens,output_tokens,cached_input_tokens,cost_usd"));
    let mut calls = 0_u64;
    for line in lines {
        let fields: Vec<&str> = line.rsplitn(6, ',').collect();
        calls += fields[4].parse::<u64>().unwrap();
    }
    assert_eq!(calls, expect.calls);

    // Latency: every agent has its chart.
    let (status, body) = app.page("/dashboard/latency?range=7d&bucket=day").await;
    assert_eq!(status, 200);
    for agent in seed::AGENTS {
        assert!(body.contains(&format!("aria-label=\"{agent}\"")), "latency chart of {agent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pages_show_the_seeded_figures() {
    let app = spawn_seeded(Kind::Sqlite, 120, Access::with_token(ADMIN_TOKEN)).await;
    figures_match_the_data(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_pages_show_the_seeded_figures() {
    let app = spawn_seeded(Kind::ClickHouse, 120, Access::with_token(ADMIN_TOKEN)).await;
    figures_match_the_data(&app).await;
}

const INJECTED: [&str; 8] = [
    "<script>window.pwned",
    "<img src=x",
    "<iframe",
    "onmouseover=\"window",
    "<svg onload",
    "</title><script>",
    "<style>body",
    "sk-live-must-never-render",
];

async fn assert_inert(app: &DashboardApp, path: &str) -> String {
    let (status, body) = app.page(path).await;
    assert_eq!(status, 200, "{path}");
    for needle in INJECTED {
        assert!(!body.contains(needle), "{path} renders {needle:?} unescaped");
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_corpus_renders_inert_on_every_page() {
    let app = spawn_seeded(Kind::Sqlite, 20, Access::with_token(ADMIN_TOKEN)).await;
    let body = assert_inert(&app, &format!("/dashboard/traces/{HOSTILE_TRACE_ID}")).await;
    assert!(
        body.contains("&#60;script&#62;window.pwned=1") || body.contains("&lt;script&gt;window.pwned=1"),
        "the agent name is shown, escaped"
    );
    assert!(body.contains("[redacted]"), "credential-like attributes are redacted");
    assert!(body.contains("more characters"), "200 KB values are cut");
    assert!(body.contains('\u{fffd}'), "invalid UTF-8 shows as replacement characters");
    for path in ["/dashboard", "/dashboard/traces", "/dashboard/cost", "/dashboard/latency"] {
        assert_inert(&app, path).await;
    }
    let body = assert_inert(&app, &format!("/dashboard/traces?agent={}", enc(HOSTILE_AGENT))).await;
    assert_eq!(body.matches("class=\"trace-row\"").count(), 1, "the hostile agent is a filter value like any other");
    // SQL in filters is a value: no match, no error.
    for (key, value) in
        [("agent", HOSTILE_MODEL), ("tenant", HOSTILE_MODEL), ("model", HOSTILE_MODEL), ("tenant", HOSTILE_TENANT)]
    {
        let body = assert_inert(&app, &format!("/dashboard/traces?{key}={}", enc(value))).await;
        if value == HOSTILE_TENANT {
            assert_eq!(body.matches("class=\"trace-row\"").count(), 1);
        } else {
            assert!(body.contains("id=\"no-traces\""), "{key}={value}");
        }
    }
    let csv = app.get("/dashboard/cost.csv?by=agent").await.text().await.unwrap();
    assert!(csv.contains("\"<script>window.pwned=1;alert(1)</script>\""), "CSV quotes the hostile name: {csv}");
    let csv = app.get("/dashboard/cost.csv?by=model").await.text().await.unwrap();
    assert!(csv.contains(&format!("\"{}\"", HOSTILE_MODEL.replace('"', "\"\""))), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_answer_400_naming_the_filter_and_unknown_traces_404() {
    let app = spawn_seeded(Kind::Sqlite, 5, Access::with_token(ADMIN_TOKEN)).await;
    for (path, field) in [
        ("/dashboard/traces?min_cost_usd=1%3B%20DROP%20TABLE%20spans", "min_cost_usd"),
        ("/dashboard/traces?status=%27%20OR%201%3D1%20--", "status"),
        ("/dashboard/traces?min_latency_ms=-5", "min_latency_ms"),
        ("/dashboard/traces?trace_id=%3Cscript%3E", "trace_id"),
        ("/dashboard/traces?after=1-zz", "after"),
        ("/dashboard?range=forever", "range"),
        ("/dashboard/cost?from=2026-02-31", "from"),
        ("/dashboard/latency?bucket=minute", "bucket"),
        ("/dashboard/cost.csv?by=secret", "by"),
        (&format!("/dashboard/traces?agent={}", "a".repeat(300)), "agent"),
    ] {
        let (status, body) = app.page(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(&format!("`{field}`")), "{path}: {body}");
    }
    let (status, _) = app.page("/dashboard/traces?agent=%FF%FE").await;
    assert!(status == 200 || status == 400, "invalid percent-encoded UTF-8 gives {status}");
    for path in [
        "/dashboard/traces/ffffffffffffffffffffffffffffffff",
        "/dashboard/traces/%3Cscript%3E",
        "/dashboard/traces/x'%20OR%201=1",
    ] {
        let (status, body) = app.page(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("<script>"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_guards_every_page() {
    let app = spawn_seeded(Kind::Sqlite, 5, Access::with_token(ADMIN_TOKEN)).await;
    for path in [
        "/dashboard",
        "/dashboard/traces",
        "/dashboard/cost",
        "/dashboard/cost.csv",
        "/dashboard/latency",
        &format!("/dashboard/traces/{HOSTILE_TRACE_ID}"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path} without a credential");
        assert_eq!(response.headers()["location"], "/dashboard/login");
        let response = app.client.get(app.url(path)).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(response.status(), 401, "{path} with a wrong token");
        assert!(!response.text().await.unwrap().contains("stat-requests"));
    }
    let response = app.client.get(app.url("/dashboard/login")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("content-security-policy"));
    let response = app
        .client
        .post(app.url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .client
        .post(app.url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", enc(ADMIN_TOKEN)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie does not carry the token");
    let pair = cookie.split(';').next().unwrap();
    let response = app.client.get(app.url("/dashboard")).header("cookie", pair).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(!body.contains(ADMIN_TOKEN));
    assert!(!body.contains("open-dev-mode"));
    let response =
        app.client.get(app.url("/dashboard")).header("cookie", "glassbox_dashboard=forged").send().await.unwrap();
    assert_eq!(response.status(), 303);
    let response = app.client.get(app.url("/dashboard/static/dashboard.css")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_dashboard_is_closed_unless_in_open_development_mode() {
    let closed = spawn_seeded(Kind::Sqlite, 3, Access::Closed).await;
    for path in ["/dashboard", "/dashboard/traces", "/dashboard/cost.csv"] {
        let (status, body) = closed.page(path).await;
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("admin_token_env"), "{body}");
    }
    let open = spawn_seeded(Kind::Sqlite, 3, Access::OpenDevelopment).await;
    let response = open.client.get(open.url("/dashboard")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("id=\"open-dev-mode\""), "the page says it is open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_views_leave_no_traces_and_the_api_still_answers() {
    let app = spawn_seeded(Kind::Sqlite, 3, Access::OpenDevelopment).await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.client.get(app.url("/dashboard/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

const ACME_KEY: &str = "gbx_acme_dashboard_test_key";
const GLOBEX_KEY: &str = "gbx_globex_dashboard_test_key";
const ACME_ONE_AGENT_KEY: &str = "gbx_acme_restricted_test_key";

/// The admin token plus API keys as the server builds them from `[keys]`: acme and globex
/// with every agent, and an acme key limited to one agent (no dashboard credential).
fn key_access() -> Access {
    let key = |id: &str, tenant: &str, value: &str, agents: Option<Vec<String>>| KeyConfig {
        id: id.into(),
        tenant: tenant.into(),
        secret: KeySecret::Sha256(secret::hex(&secret::sha256(value))),
        agents,
        workflows: None,
        rate_limit: None,
        budget: BudgetConfig::default(),
    };
    let keys = [
        key("acme", "acme", ACME_KEY, None),
        key("globex", "globex", GLOBEX_KEY, None),
        key("acme_one", "acme", ACME_ONE_AGENT_KEY, Some(vec!["support-bot".into()])),
    ];
    let api = glassbox_server::access::Access::build(&[], &keys, &[], &|_| None, Arc::new(PricingTable::shipped()))
        .expect("keys");
    Access::Resolver(Arc::new(KeyViewers::new(Some(ADMIN_TOKEN), &api).expect("key viewers")))
}

async fn get_as(app: &DashboardApp, credential: &str, path: &str) -> (u16, String) {
    let response = app.client.get(app.url(path)).bearer_auth(credential).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Sum of the `Calls` column of every latency table on the page.
fn latency_calls(body: &str) -> u64 {
    body.split("<tr><td>")
        .skip(1)
        .filter_map(|row| row.split("<td class=\"num\">").nth(1)?.split('<').next()?.parse::<u64>().ok())
        .sum()
}

async fn tenant_keys_see_only_their_tenant(kind: Kind) {
    let app = spawn_seeded(kind, 120, key_access()).await;
    let expect = &app.expect;
    let acme = &expect.by_tenant["acme"];
    assert!(acme.traces > 0 && acme.traces < expect.traces, "the seed has acme's and other traces");

    // The admin token still sees everything.
    let (status, body) = get_as(&app, ADMIN_TOKEN, "/dashboard").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!(r#"id="stat-requests">{}<"#, expect.traces)), "admin sees every trace");

    // The traces table lists acme's traces only, whatever tenant the URL asks for.
    for path in ["/dashboard/traces", "/dashboard/traces?tenant=globex", "/dashboard/traces?tenant=acme"] {
        let (status, body) = get_as(&app, ACME_KEY, path).await;
        assert_eq!(status, 200, "{path}");
        let rows = body.matches("class=\"trace-row\"").count();
        assert_eq!(rows as u64, acme.traces.min(50), "{path}");
        assert_eq!(body.matches("<td>acme</td>").count(), rows, "{path}: only acme's traces");
    }
    // Another tenant's trace is "not found", exactly like a trace that does not exist.
    let globex_trace = &expect.by_tenant["globex"].trace_ids[0];
    for trace_id in [globex_trace.as_str(), HOSTILE_TRACE_ID, "ffffffffffffffffffffffffffffffff"] {
        let (status, body) = get_as(&app, ACME_KEY, &format!("/dashboard/traces/{trace_id}")).await;
        assert_eq!(status, 404, "{trace_id}");
        assert!(!body.contains(trace_id), "a refused trace shows nothing of it");
    }
    let (status, body) = get_as(&app, GLOBEX_KEY, &format!("/dashboard/traces/{globex_trace}")).await;
    assert_eq!(status, 200, "globex's own trace");
    assert!(body.contains("<dd>globex</dd>"));
    let acme_trace = &acme.trace_ids[0];
    let (status, body) = get_as(&app, ACME_KEY, &format!("/dashboard/traces/{acme_trace}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("<dd>acme</dd>"));

    // Overview, cost, CSV and latency count acme's traces and calls only.
    let (status, body) = get_as(&app, ACME_KEY, "/dashboard?range=7d").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!(r#"id="stat-requests">{}<"#, acme.traces)), "acme's requests");
    assert!(body.contains(&format!(r#"id="stat-cost">{}<"#, format::usd(acme.cost_nano_usd))), "acme's cost");
    assert!(body.contains(&format!(r#"id="stat-tokens">{} / {}<"#, acme.input_tokens, acme.output_tokens)));
    assert!(
        body.contains(&format!(r#"id="stat-error-rate">{}<"#, format::percent(acme.error_traces, acme.traces))),
        "acme's error rate"
    );
    assert!(body.contains(&format!(r#"id="stat-blocked">{}<"#, acme.blocked)), "acme's blocks");
    assert!(body.contains(&format!(r#"id="stat-refused">{}<"#, acme.refused)), "acme's refusals");
    let (status, body) = get_as(&app, ACME_KEY, "/dashboard/cost?range=7d").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!(r#"id="cost-total">{}<"#, format::usd(acme.usage_cost_nano_usd))), "acme's cost");
    assert!(body.contains(&format!(r#"id="cost-calls">{}<"#, acme.calls)));
    assert!(!body.contains("globex") && !body.contains("initech"), "no other tenant is named");
    let (status, csv) = get_as(&app, ACME_KEY, "/dashboard/cost.csv?range=7d&by=tenant").await;
    assert_eq!(status, 200);
    let tenants: Vec<&str> = csv.lines().skip(1).map(|line| line.split(',').next().unwrap_or("")).collect();
    assert_eq!(tenants, ["\"acme\""], "{csv}");
    let (status, body) = get_as(&app, ACME_KEY, "/dashboard/latency?range=7d&bucket=day").await;
    assert_eq!(status, 200);
    assert_eq!(latency_calls(&body), 2 * acme.calls, "by agent and by model, acme's calls only");
    let (_, body) = get_as(&app, ADMIN_TOKEN, "/dashboard/latency?range=7d&bucket=day").await;
    assert_eq!(latency_calls(&body), 2 * expect.calls, "admin: every call");

    // A key limited to some agents is no dashboard credential; nor is a wrong key.
    for credential in [ACME_ONE_AGENT_KEY, "gbx_wrong"] {
        let (status, _) = get_as(&app, credential, "/dashboard/traces").await;
        assert_eq!(status, 401, "{credential}");
    }
    // No credential: the login form.
    let response = app.client.get(app.url("/dashboard/traces")).send().await.unwrap();
    assert_eq!(response.status(), 303);

    // The login form takes the key and sets a cookie that does not contain it.
    let response = app
        .client
        .post(app.url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", enc(ACME_KEY)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && !cookie.contains(ACME_KEY), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let response = app.client.get(app.url("/dashboard/traces?tenant=globex")).header("cookie", pair).send().await;
    let body = response.unwrap().text().await.unwrap();
    let rows = body.matches("class=\"trace-row\"").count();
    assert!(rows > 0);
    assert_eq!(body.matches("<td>acme</td>").count(), rows, "the cookie is acme's");
    let response =
        app.client.get(app.url(&format!("/dashboard/traces/{globex_trace}"))).header("cookie", pair).send().await;
    assert_eq!(response.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tenant_keys_see_only_their_tenant_even_by_guessing_urls() {
    tenant_keys_see_only_their_tenant(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_tenant_keys_see_only_their_tenant_even_by_guessing_urls() {
    tenant_keys_see_only_their_tenant(Kind::ClickHouse).await;
}
