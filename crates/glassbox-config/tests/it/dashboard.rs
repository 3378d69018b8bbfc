//! `[dashboard]`: the admin token's variable name and open development mode.

use glassbox_config::DashboardConfig;

use crate::{config, problem};

#[test]
fn absent_section_means_no_token_and_closed() {
    assert_eq!(config("").dashboard, DashboardConfig { admin_token_env: None, open_dev_mode: false });
}

#[test]
fn token_variable_name_and_dev_mode_are_read() {
    let parsed = config("[dashboard]\nadmin_token_env = \"GLASSBOX_ADMIN_TOKEN\"\nopen_dev_mode = true\n");
    assert_eq!(
        parsed.dashboard,
        DashboardConfig { admin_token_env: Some("GLASSBOX_ADMIN_TOKEN".into()), open_dev_mode: true }
    );
}

#[test]
fn a_token_instead_of_a_variable_name_is_refused_without_quoting_it() {
    let message = problem("[dashboard]\nadmin_token_env = \"s3cr3t-t0ken!\"\n");
    assert!(
        message.starts_with("2:19: dashboard.admin_token_env: must be the name of an environment variable"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
}

#[test]
fn wrong_types_and_unknown_keys_are_problems() {
    assert_eq!(problem("[dashboard]\nopen_dev_mode = \"yes\"\n"), "2:17: dashboard.open_dev_mode: expected a boolean");
    let message = problem("[dashboard]\nadmin_token = \"x\"\n");
    assert!(message.contains("dashboard.admin_token"), "{message}");
}
