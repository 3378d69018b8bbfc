//! Reports: the JSON report reads back equal; the JUnit XML validates against the JUnit
//! schema (tests/junit/junit.xsd) with the `xmlschema` Python package that tests/run.sh
//! installs; the Markdown summary names failures.

use std::path::{Path, PathBuf};
use std::process::Command;

use glassbox_evals::report::{self, Report};
use glassbox_evals::runner::Quiet;
use glassbox_evals::{Mode, Suite, run_suite};
use glassbox_store::pricing::PricingTable;

use crate::support::MockTargets;

/// A live run against the mock provider with passing, failing and errored cases.
async fn mixed_report(dir: &Path) -> Report {
    let rows = "{\"id\": \"ok\", \"input\": \"hello\", \"expected\": \"You said: hello\"}\n\
                {\"id\": \"wrong <&> \\\"quotes\\\"\", \"input\": \"bye\", \"expected\": \"You said: hi\"}\n\
                {\"id\": \"no-expected\", \"input\": \"ctrl \\u0001 char\"}\n";
    std::fs::write(dir.join("cases.jsonl"), rows).unwrap();
    let path = dir.join("mixed.toml");
    std::fs::write(&path, "target = { agent = \"echo\" }\ndataset = \"cases.jsonl\"\n[gate]\nmin_pass_rate = 0.5\n[[scorers]]\ntype = \"exact_match\"\n[[scorers]]\ntype = \"no_pii\"\n").unwrap();
    let suite = Suite::load(&path).unwrap();
    run_suite(&suite, &MockTargets::new("x"), Mode::Live, &PricingTable::shipped(), &Quiet, None).await.unwrap().0
}

#[tokio::test]
async fn json_report_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let report = mixed_report(dir.path()).await;
    assert_eq!((report.total, report.passed, report.failed), (3, 1, 2));
    let text = report.to_json();
    let back = Report::from_json(&text, "test").unwrap();
    assert_eq!(back, report);
    // As a one-element array too (what --json writes for several suites).
    let array = serde_json::to_string(&vec![report.clone()]).unwrap();
    let file = dir.path().join("all.json");
    std::fs::write(&file, array).unwrap();
    assert_eq!(Report::load_for_suite(&file, "mixed").unwrap(), report);
    assert!(Report::load_for_suite(&file, "other").unwrap_err().to_string().contains("no report of suite other"));
    let future = text.replacen("\"format\": 1", "\"format\": 99", 1);
    assert!(Report::from_json(&future, "f").unwrap_err().to_string().contains("format 99"));
}

fn python() -> PathBuf {
    let python = std::env::var_os("GLASSBOX_PYTHON")
        .expect("GLASSBOX_PYTHON is not set: run ./tests/run.sh (it installs the xmlschema validator)");
    PathBuf::from(python)
}

/// Runs the `xmlschema` validator; `Err` carries its message.
fn validate(xml: &Path) -> Result<(), String> {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/junit/junit.xsd");
    let output = Command::new(python())
        .args(["-c", "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2])"])
        .arg(&xsd)
        .arg(xml)
        .output()
        .expect("run the Python validator");
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

#[tokio::test]
async fn junit_validates_against_the_junit_schema() {
    let dir = tempfile::tempdir().unwrap();
    let report = mixed_report(dir.path()).await;
    let xml = report::junit(std::slice::from_ref(&report));
    assert!(xml.contains("<failure message=\"failed: exact_match\" type=\"scorer\">"), "{xml}");
    assert!(xml.contains("name=\"wrong &lt;&amp;&gt; &quot;quotes&quot;\""), "{xml}");
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, &xml).unwrap();
    validate(&file).unwrap_or_else(|error| panic!("JUnit XML does not validate: {error}\n{xml}"));

    // The validator is real: the same file without <properties> is refused.
    let broken = dir.path().join("broken.xml");
    let start = xml.find("<properties>").unwrap();
    let end = xml.find("</properties>").unwrap() + "</properties>".len();
    std::fs::write(&broken, format!("{}{}", &xml[..start], &xml[end..])).unwrap();
    assert!(validate(&broken).is_err(), "a testsuite without properties must not validate");
}

#[tokio::test]
async fn markdown_and_table_name_the_failures() {
    let dir = tempfile::tempdir().unwrap();
    let report = mixed_report(dir.path()).await;
    let markdown = report::markdown(std::slice::from_ref(&report));
    assert!(markdown.contains("| `mixed` | agent echo | 3 | 1 | 33.3% | ❌ failed |"), "{markdown}");
    assert!(markdown.contains("2 failed case(s)"), "{markdown}");
    assert!(markdown.contains("- You said: hi\n+ You said: bye"), "{markdown}");
    let table = report::summary_table(&report);
    assert!(table.lines().next().unwrap().starts_with("scorer"), "{table}");
    assert!(table.contains("exact_match"), "{table}");
}
