//! `[tenants.<id>]` and `[keys.<id>]`: API keys, rate limits and period budgets.

use glassbox_config::{BudgetConfig, KeySecret, RateLimitConfig};

use crate::{BASE, config, problem, problems};

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn tenants_and_keys_load_with_defaults() {
    let config = config(&format!(
        r#"{BASE}
[tenants.acme]
requests_per_minute = 120
daily_usd = 2.5
monthly_tokens = 1000000

[keys.ci]
tenant = "acme"
key_sha256 = "{}"
agents = ["a"]
workflows = ["onboarding"]
burst = 3
requests_per_minute = 30
daily_tokens = 500

[keys.ops]
tenant = "other"
key_env = "OPS_KEY"
"#,
        HASH.to_uppercase()
    ));
    assert_eq!(config.tenants.len(), 1);
    let tenant = &config.tenants[0];
    assert_eq!(tenant.id, "acme");
    assert_eq!(tenant.rate_limit, Some(RateLimitConfig { requests_per_minute: 120, burst: 120 }));
    assert_eq!(
        tenant.budget,
        BudgetConfig { daily_tokens: None, daily_usd: Some(2.5), monthly_tokens: Some(1_000_000), monthly_usd: None }
    );
    let ids: Vec<&str> = config.keys.iter().map(|key| key.id.as_str()).collect();
    assert_eq!(ids, ["ci", "ops"]);
    let ci = &config.keys[0];
    assert_eq!(ci.tenant, "acme");
    assert_eq!(ci.secret, KeySecret::Sha256(HASH.to_owned()));
    assert_eq!(ci.agents.as_deref(), Some(&["a".to_owned()][..]));
    assert_eq!(ci.workflows.as_deref(), Some(&["onboarding".to_owned()][..]));
    assert_eq!(ci.rate_limit, Some(RateLimitConfig { requests_per_minute: 30, burst: 3 }));
    assert_eq!(ci.budget.daily_tokens, Some(500));
    let ops = &config.keys[1];
    assert_eq!(ops.secret, KeySecret::Env("OPS_KEY".to_owned()));
    assert_eq!((ops.agents.clone(), ops.rate_limit), (None, None));
    assert!(ops.budget.is_unlimited());
}

#[test]
fn no_keys_section_means_no_keys() {
    let config = config(BASE);
    assert!(config.keys.is_empty() && config.tenants.is_empty());
}

#[test]
fn a_key_needs_a_tenant_and_exactly_one_secret() {
    assert_eq!(
        problem(&format!("{BASE}\n[keys.k]\nkey_env = \"K\"\n")),
        "10:7: keys.k: missing required key \"tenant\""
    );
    assert_eq!(problem(&format!("{BASE}\n[keys.k]\ntenant = \"t\"\n")), "10:7: keys.k: missing key_env or key_sha256");
    assert_eq!(
        problem(&format!("{BASE}\n[keys.k]\ntenant = \"t\"\nkey_env = \"K\"\nkey_sha256 = \"{HASH}\"\n")),
        "12:1: keys.k: set key_env or key_sha256, not both"
    );
}

#[test]
fn bad_values_are_named_with_their_place() {
    assert_eq!(
        problem(&format!("{BASE}\n[keys.k]\ntenant = \"t\"\nkey_sha256 = \"abc\"\n")),
        "12:14: keys.k.key_sha256: must be the SHA-256 of the key as 64 hex digits"
    );
    assert_eq!(
        problem(&format!("{BASE}\n[keys.k]\ntenant = \"t\"\nkey_env = \"sk-live-123\"\n")),
        "12:11: keys.k.key_env: must be the name of an environment variable (letters, digits and \"_\", not \
         starting with a digit), not the key itself"
    );
    assert_eq!(
        problem(&format!("{BASE}\n[keys.k]\ntenant = \"t\"\nkey_env = \"K\"\nagents = [\"a\", \"nope\"]\n")),
        "13:16: keys.k.agents[1]: unknown agent \"nope\" (known: a)"
    );
    assert_eq!(
        problem(&format!("{BASE}\n[tenants.t]\nburst = 4\n")),
        "11:1: tenants.t: burst needs requests_per_minute"
    );
    assert_eq!(
        problem(&format!("{BASE}\n[tenants.t]\nrequests_per_minute = 0\n")),
        "11:23: tenants.t.requests_per_minute: must be between 1 and 1000000000, got 0"
    );
    assert_eq!(
        problem(&format!("{BASE}\n[tenants.t]\ndaily_usd = -1.0\n")),
        "11:13: tenants.t.daily_usd: must be between 0.0 and 1000000000.0, got -1.0"
    );
    assert_eq!(
        problem(&format!("{BASE}\n[tenants.t]\nmonthly_tokns = 5\n")),
        "11:1: tenants.t.monthly_tokns: unknown key (did you mean \"monthly_tokens\"?)"
    );
}

#[test]
fn the_same_hash_twice_is_refused() {
    let all = problems(&format!(
        "{BASE}\n[keys.a]\ntenant = \"t\"\nkey_sha256 = \"{HASH}\"\n[keys.b]\ntenant = \"t\"\nkey_sha256 = \"{HASH}\"\n"
    ));
    assert_eq!(all, ["13:7: keys.b: the same key_sha256 is declared twice"]);
}
