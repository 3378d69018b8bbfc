//! `[online_evals.<agent>]`: scorers attached to an agent, with their problems positioned.

use serde_json::json;

use crate::{BASE, config, problem, problems};

#[test]
fn scorers_attach_to_an_agent_with_defaults() {
    let loaded = config(&format!(
        "{BASE}\n[online_evals.a]\nsample_rate = 0.25\nscorers = [{{ type = \"no_pii\" }}, {{ type = \"contains\", value = \"${{HOST}}\", threshold = 0.5 }}]\n"
    ));
    let online = &loaded.online_evals[0];
    assert_eq!(online.agent, "a");
    assert_eq!(online.sample_rate, 0.25);
    assert_eq!(online.timeout, std::time::Duration::from_secs(30));
    assert_eq!(online.scorers[0], json!({ "type": "no_pii" }));
    assert_eq!(online.scorers[1], json!({ "type": "contains", "value": "127.0.0.1", "threshold": 0.5 }));
    assert!(config(BASE).online_evals.is_empty());
}

#[test]
fn problems_are_positioned() {
    assert_eq!(
        problem(&format!("{BASE}\n[online_evals.nobody]\nscorers = [{{ type = \"no_pii\" }}]\n")),
        "10:15: online_evals.nobody: unknown agent \"nobody\" (scorers attach to an agent of [agents])"
    );
    let found = problems(&format!("{BASE}\n[online_evals.a]\nsample_rate = 2\nscorers = [\"no_pii\", {{ value = 1 }}]\n"));
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("online_evals.a.sample_rate: must be between 0.0 and 1.0"), "{found:#?}");
    assert!(found[1].contains("online_evals.a.scorers[0]: a scorer is a table with a string `type`"), "{found:#?}");
    assert!(found[2].contains("online_evals.a.scorers[1]: a scorer is a table with a string `type`"), "{found:#?}");
    assert!(problem(&format!("{BASE}\n[online_evals.a]\nsample_rate = 1\n")).contains("missing required key \"scorers\""));
}
