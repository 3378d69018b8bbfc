//! The Evals, Workflows and Budgets pages over HTTP on seeded data, on SQLite and on
//! ClickHouse: the figures match the seed, hostile text renders inert, no secret is rendered,
//! bad filters answer 400 naming the filter, and a tenant-scoped viewer sees only its tenant.

use glassbox_server::dashboard::{Access, ResolveViewer, Scope, Viewer};

use super::seed_pages::{
    HOSTILE_CASE, HOSTILE_ERROR, HOSTILE_KEY, HOSTILE_OUTPUT, HOSTILE_REASON, HOSTILE_RESULT, OTHER_SUITE, SECRET, SUITE,
};
use super::{ADMIN_TOKEN, DashboardApp, Kind, spawn_seeded};

/// The text of the element with `id`, up to its first `<`.
fn by_id<'a>(body: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\">");
    let start = body.find(&marker).unwrap_or_else(|| panic!("no #{id} in the page")) + marker.len();
    let rest = &body[start..];
    &rest[..rest.find('<').unwrap_or(rest.len())]
}

async fn ok_page(app: &DashboardApp, path: &str) -> String {
    let (status, body) = app.page(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn figures_match_the_seed(app: &DashboardApp) {
    let expect = &app.pages;
    let latest = expect.run_ids.last().expect("runs");

    // Evals: one chart per suite, the runs newest first, the online scores of the last 24 h.
    let body = ok_page(app, "/dashboard/evals").await;
    assert!(
        body.contains(&format!("data-suite=\"{SUITE}\"")) && body.contains(&format!("data-suite=\"{OTHER_SUITE}\""))
    );
    let listed: Vec<&str> = body
        .match_indices("class=\"eval-run-row\" data-run-id=\"")
        .map(|(at, m)| {
            let rest = &body[at + m.len()..];
            &rest[..rest.find('"').unwrap_or(0)]
        })
        .collect();
    assert_eq!(listed.len(), expect.run_ids.len() + 1, "every run listed");
    assert_eq!(listed[0], "run-0-of-extractor", "newest first");
    assert_eq!(listed[1], latest.as_str());
    for rate in &expect.pass_rates {
        assert!(body.contains(&format!("<td class=\"num pass-rate\">{rate}</td>")), "pass rate {rate}");
    }
    // The main suite's chart: the overall line and one per scorer, a dot per run.
    let chart =
        body.split(&format!("data-suite=\"{SUITE}\"")).nth(1).and_then(|rest| rest.split("</figure>").next()).unwrap();
    assert_eq!(chart.matches("<polyline").count(), 3, "overall + 2 scorers");
    assert_eq!(chart.matches("<circle").count(), 3 * expect.run_ids.len());
    assert_eq!(by_id(&body, "online-scored"), expect.online_scored.to_string());
    assert_eq!(by_id(&body, "online-pass-rate"), expect.online_pass_rate);
    // A suite filter narrows everything to that suite.
    let body = ok_page(app, &format!("/dashboard/evals?suite={OTHER_SUITE}&runs=5")).await;
    assert_eq!(body.matches("class=\"eval-run-row\"").count(), 1);
    assert!(!body.contains(&format!("data-suite=\"{SUITE}\"")));

    // One run against the previous run of its suite.
    let body = ok_page(app, &format!("/dashboard/evals/runs/{latest}")).await;
    assert_eq!(by_id(&body, "eval-pass-rate"), expect.pass_rates.last().unwrap().as_str());
    assert_eq!(by_id(&body, "eval-failing"), expect.latest_failing_cases.to_string());
    assert_eq!(by_id(&body, "eval-regressions"), expect.latest_regressions.to_string());
    assert_eq!(by_id(&body, "eval-fixes"), expect.latest_fixes.to_string());
    assert!(body.contains(&format!("href=\"/dashboard/evals/runs/{}\"", expect.run_ids[expect.run_ids.len() - 2])));
    for (scorer, rate) in &expect.latest_scorer_rates {
        assert!(body.contains(&format!("<td>{scorer}</td><td class=\"num\">{rate}</td>")), "{scorer} {rate}");
    }
    // Failures and changes by default, every case with show=all.
    let failing_rows = body.matches("class=\"case-row").count();
    let body_all = ok_page(app, &format!("/dashboard/evals/runs/{latest}?show=all")).await;
    assert_eq!(body_all.matches("class=\"case-row").count(), 12, "6 cases x 2 scorers");
    assert!(failing_rows < 12 && failing_rows > 0);
    assert_eq!(body.matches("class=\"case-row change-regressed\"").count(), expect.latest_regressions);
    // Each case's input, expected value and output, and its output diffed against the
    // baseline's: the line naming the run changed, the lines around it did not.
    assert_eq!(body_all.matches("class=\"case-detail\"").count(), 6);
    let previous = expect.run_ids.len() - 2;
    let this = expect.run_ids.len() - 1;
    assert!(body_all.contains("<pre>question 1</pre>"), "input shown");
    assert!(body_all.contains("{&#34;contains&#34;:&#34;Hello&#34;}") || body_all.contains("{&quot;contains&quot;:&quot;Hello&quot;}"), "expected shown");
    assert!(body_all.contains(&format!("<span class=\"diff-removed\">- run {previous} answers case 1</span>")), "old line");
    assert!(body_all.contains(&format!("<span class=\"diff-added\">+ run {this} answers case 1</span>")), "new line");
    assert!(body_all.contains("<span class=\"diff-same\">  Hello.</span>"), "context line");
    // Another baseline, named in the URL.
    let body = ok_page(app, &format!("/dashboard/evals/runs/{latest}?baseline={}", expect.run_ids[0])).await;
    assert_eq!(by_id(&body, "eval-regressions"), expect.regressions_against_oldest.to_string());
    // The first run has no baseline.
    let body = ok_page(app, &format!("/dashboard/evals/runs/{}", expect.run_ids[0])).await;
    assert!(by_id(&body, "eval-baseline").starts_with("none"));

    // Workflows: the runs of the last 24 h, their traces linked.
    let body = ok_page(app, "/dashboard/workflows").await;
    assert_eq!(by_id(&body, "workflow-runs"), expect.workflow_runs.to_string());
    assert_eq!(by_id(&body, "workflow-failed"), expect.failed_runs.to_string());
    assert!(!body.contains("wf-run-old"), "outside the range");
    for (run_id, trace_ids) in &expect.traced_runs {
        let row = body
            .split(&format!("data-run-id=\"{run_id}\""))
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap();
        assert_eq!(row.matches("class=\"trace-link\"").count(), trace_ids.len(), "{run_id}");
        for trace_id in trace_ids {
            assert!(row.contains(&format!("href=\"/dashboard/traces/{trace_id}\"")), "{run_id} -> {trace_id}");
        }
    }
    // The link leads to the trace, whose waterfall has the workflow span.
    let (run_id, trace_ids) = &expect.traced_runs[0];
    let body = ok_page(app, &format!("/dashboard/traces/{}", trace_ids[0])).await;
    assert!(body.contains("invoke_workflow onboarding") && body.contains(run_id.as_str()));
    let body = ok_page(app, "/dashboard/workflows?status=failed&range=7d").await;
    assert_eq!(body.matches("class=\"workflow-row\"").count(), 2, "failed in 7 days: the seeded one and the old one");
    let body = ok_page(app, "/dashboard/workflows?workflow=nope").await;
    assert_eq!(body.matches("class=\"workflow-row\"").count(), 0);

    // Budgets and keys.
    let body = ok_page(app, "/dashboard/budgets").await;
    let row = |body: &str, class: &str, id: &str| -> String {
        body.split(&format!("<tr class=\"{class}\" data-id=\"{id}\">"))
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap_or_else(|| panic!("no {class} {id}"))
            .to_owned()
    };
    let acme = row(&body, "tenant-row", "acme");
    assert!(acme.contains(&expect.acme_day_tokens) && acme.contains(&expect.acme_day_percent), "{acme}");
    let key = row(&body, "key-row", "acme-prod");
    assert!(key.contains(&expect.acme_key_day_tokens) && key.contains(&expect.acme_key_day_percent), "{key}");
    let globex = row(&body, "tenant-row", "globex");
    assert!(globex.contains(&expect.globex_day_usd) && globex.contains(&expect.globex_day_percent), "{globex}");
    assert!(globex.contains("meter-fill over"));
    assert_eq!(body.matches("class=\"key-row\"").count(), expect.key_ids.len());
    assert!(!body.contains(SECRET) && !body.contains(&expect.secret_sha256), "no secret, no hash");
    let body = ok_page(app, "/dashboard/budgets?tenant=globex").await;
    assert_eq!(body.matches("class=\"tenant-row\"").count(), 1);
    assert_eq!(body.matches("class=\"key-row\"").count(), 1);

    // The navigation links the new pages.
    for href in ["/dashboard/evals", "/dashboard/workflows", "/dashboard/budgets"] {
        assert!(body.contains(&format!("<a href=\"{href}\"")), "nav {href}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_evals_workflows_and_budgets_show_the_seeded_figures() {
    let app = spawn_seeded(Kind::Sqlite, 40, Access::with_token(ADMIN_TOKEN)).await;
    figures_match_the_seed(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_evals_workflows_and_budgets_show_the_seeded_figures() {
    let app = spawn_seeded(Kind::ClickHouse, 40, Access::with_token(ADMIN_TOKEN)).await;
    figures_match_the_seed(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cases_results_and_key_names_render_inert() {
    let app = spawn_seeded(Kind::Sqlite, 5, Access::with_token(ADMIN_TOKEN)).await;
    let latest = app.pages.run_ids.last().unwrap().clone();
    let pages = [
        "/dashboard/evals".to_owned(),
        format!("/dashboard/evals/runs/{latest}?show=all"),
        "/dashboard/workflows".to_owned(),
        "/dashboard/budgets".to_owned(),
    ];
    for path in &pages {
        let body = ok_page(&app, path).await;
        for raw in [HOSTILE_CASE, HOSTILE_REASON, HOSTILE_RESULT, HOSTILE_ERROR, HOSTILE_KEY, HOSTILE_OUTPUT] {
            assert!(!body.contains(raw), "{path} contains raw {raw}");
        }
        for tag in ["<script", "<img", "<iframe", "<svg onload"] {
            assert!(!body.contains(tag), "{path} contains {tag}");
        }
        assert!(!body.contains(SECRET));
    }
    // The escaped text is there, so it was rendered, not dropped.
    let body = ok_page(&app, &format!("/dashboard/evals/runs/{latest}?show=all")).await;
    assert!(
        body.contains("&#60;script&#62;window.pwned=3&#60;/script&#62;")
            || body.contains("&lt;script&gt;window.pwned=3"),
        "case id escaped"
    );
    assert!(body.contains("window.pwned=9"), "the hostile output is rendered, escaped");
    let body = ok_page(&app, "/dashboard/workflows").await;
    assert!(body.contains("window.pwned=5") && body.contains("window.pwned=7"));
    let body = ok_page(&app, "/dashboard/budgets").await;
    assert!(body.contains("window.pwned=6"));
    // A hostile run id in the URL is a 404 page that does not echo it raw.
    let (status, body) = app.page("/dashboard/evals/runs/%3Cscript%3Ewindow.pwned%3D8%3C%2Fscript%3E").await;
    assert_eq!(status, 404);
    assert!(!body.contains("<script"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_answer_400_naming_the_filter() {
    let app = spawn_seeded(Kind::Sqlite, 5, Access::with_token(ADMIN_TOKEN)).await;
    let latest = app.pages.run_ids.last().unwrap().clone();
    let long = "x".repeat(300);
    for (path, filter) in [
        ("/dashboard/evals?runs=0".to_owned(), "runs"),
        ("/dashboard/evals?runs=many".to_owned(), "runs"),
        (format!("/dashboard/evals?suite={long}"), "suite"),
        ("/dashboard/evals?range=2w".to_owned(), "range"),
        (format!("/dashboard/evals/runs/{latest}?show=everything"), "show"),
        ("/dashboard/workflows?status=exploded".to_owned(), "status"),
        ("/dashboard/workflows?limit=5000".to_owned(), "limit"),
        ("/dashboard/workflows?workflow=%27%3B%20DROP%20TABLE%20workflow_runs%3B%20--&limit=abc".to_owned(), "limit"),
        (format!("/dashboard/budgets?tenant={long}"), "tenant"),
    ] {
        let (status, body) = app.page(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(&format!("`{filter}`")), "{path} names {filter}: {body}");
    }
    for path in ["/dashboard/evals/runs/no-such-run", &format!("/dashboard/evals/runs/{latest}?baseline=nope")] {
        let (status, _) = app.page(path).await;
        assert_eq!(status, 404, "{path}");
    }
    // SQL in a filter is only a value.
    let body = ok_page(&app, "/dashboard/workflows?workflow=%27%3B%20DROP%20TABLE%20workflow_runs%3B%20--").await;
    assert_eq!(body.matches("class=\"workflow-row\"").count(), 0);
    let body = ok_page(&app, "/dashboard/workflows").await;
    assert_eq!(body.matches("class=\"workflow-row\"").count(), app.pages.workflow_runs);
    // Without the token: the login redirect, as on every page.
    for path in ["/dashboard/evals", "/dashboard/workflows", "/dashboard/budgets"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path}");
    }
}

/// Stands in for tenant-scoped API keys: `x-test-tenant: T` is a viewer of tenant T.
struct HeaderTenant;

impl ResolveViewer for HeaderTenant {
    fn resolve(&self, headers: &axum::http::HeaderMap) -> Option<Viewer> {
        let tenant = headers.get("x-test-tenant")?.to_str().ok()?.to_owned();
        Some(Viewer { scope: Scope::Tenant(tenant), signed_in: true })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scoped_viewer_sees_only_its_budgets_and_scores_and_no_suite_or_workflow_runs() {
    let app = spawn_seeded(Kind::Sqlite, 40, Access::Resolver(std::sync::Arc::new(HeaderTenant))).await;
    assert_eq!(app.pages.acme_online_scored, 3, "the seed scores three of acme's traces");
    let latest = app.pages.run_ids.last().unwrap().clone();
    let get = |path: String| {
        let request = app.client.get(app.url(&path)).header("x-test-tenant", "acme");
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // Its own tenant and keys only, whatever the URL asks for.
    for path in ["/dashboard/budgets", "/dashboard/budgets?tenant=globex", "/dashboard/budgets?tenant=initech"] {
        let (status, body) = get(path.to_owned()).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body.matches("class=\"tenant-row\"").count(), 1, "{path}");
        assert!(body.contains("<tr class=\"tenant-row\" data-id=\"acme\">"), "{path}");
        assert_eq!(body.matches("class=\"key-row\"").count(), 1, "{path}");
        assert!(body.contains("data-id=\"acme-prod\""), "{path}");
        assert!(!body.contains("globex") && !body.contains("window.pwned=6"), "{path}: nothing of other tenants");
    }
    // Evals: only the online scores of acme's traces, nothing of the suites.
    let (status, body) = get("/dashboard/evals?suite=assistant".to_owned()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"evals-tenant-only\""));
    assert!(!body.contains("eval-run-row") && !body.contains("run-0-of") && !body.contains("data-suite"));
    assert_eq!(by_id(&body, "online-scored"), app.pages.acme_online_scored.to_string(), "acme's traces only");
    assert_eq!(by_id(&body, "online-pass-rate"), "100.0%");
    // Suite runs and run records carry no tenant: refused, not leaked.
    for path in [format!("/dashboard/evals/runs/{latest}"), "/dashboard/workflows".to_owned()] {
        let (status, body) = get(path.clone()).await;
        assert_eq!(status, 403, "{path}");
        assert!(!body.contains("wf-run-") && !body.contains(SUITE), "{path}");
    }
}

/// `glassbox serve` wires the pages to its own stores and keys: a fresh SQLite store shows
/// empty Evals and Workflows pages and the configured tenant and key on Budgets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glassbox_serve_serves_the_evals_workflows_and_budgets_pages() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("glassbox.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
sqlite_path = "{db}"
spool_dir = "{spool}"

[dashboard]
admin_token_env = "DASHPAGES_TEST_ADMIN"

[tenants.acme]
daily_tokens = 5000

[keys.acme-ci]
tenant = "acme"
key_env = "DASHPAGES_TEST_KEY"
"#,
            db = dir.path().join("glassbox.db").display(),
            spool = dir.path().join("spool").display(),
        ),
    )
    .unwrap();
    let server = crate::helpers::start_server(
        &config,
        &[("DASHPAGES_TEST_ADMIN", ADMIN_TOKEN), ("DASHPAGES_TEST_KEY", "gbx_test_key_must_never_render")],
    )
    .await;
    glassbox_providers::install_crypto_provider();
    let client = reqwest::Client::new();
    let page = |path: &str| client.get(format!("{}{path}", server.url)).bearer_auth(ADMIN_TOKEN).send();
    let body = page("/dashboard/evals").await.unwrap().text().await.unwrap();
    assert!(body.contains("id=\"no-eval-runs\""), "{body}");
    let body = page("/dashboard/workflows").await.unwrap().text().await.unwrap();
    assert!(body.contains("id=\"workflow-runs\">0<"), "{body}");
    let response = page("/dashboard/budgets").await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("<tr class=\"tenant-row\" data-id=\"acme\">") && body.contains("0 / 5000"), "{body}");
    assert!(body.contains("data-id=\"acme-ci\""));
    assert!(!body.contains("gbx_test_key_must_never_render") && !body.contains("budgets-open-mode"));
    drop(server);
}
