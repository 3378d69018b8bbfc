//! `[dashboard]`: who may open the bundled dashboard at `/dashboard`.
//!
//! ```toml
//! [dashboard]
//! admin_token_env = "GLASSBOX_ADMIN_TOKEN"  # the NAME of the variable holding the admin token
//! open_dev_mode = false             # true: with no admin token, the dashboard is open to
//!                                   #   anyone who reaches the port (and says so on every page)
//! ```
//!
//! Without an admin token the dashboard refuses every request, unless `open_dev_mode` is set:
//! an unprotected dashboard shows prompts and completions, so being open is never a default.

use toml::de::DeValue;

use crate::reader::{Cx, Field};

pub(crate) const DASHBOARD_KEYS: &[&str] = &["admin_token_env", "open_dev_mode"];

/// `[dashboard]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DashboardConfig {
    /// The NAME of the environment variable holding the admin token, never the token.
    pub admin_token_env: Option<String>,
    /// Serve the dashboard without a credential when no admin token is set.
    pub open_dev_mode: bool,
}

pub(crate) fn dashboard(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<DashboardConfig> {
    let mut section = cx.section(field, DASHBOARD_KEYS)?;
    let admin_token_env = section.get("admin_token_env").map(|field| crate::build::env_name(cx, &field));
    let open_dev_mode = match section.get("open_dev_mode") {
        Some(field) => match field.node.get_ref() {
            DeValue::Boolean(value) => Some(*value),
            _ => {
                cx.error(field.offset(), format!("{}: expected a boolean", field.path));
                None
            }
        },
        None => Some(false),
    };
    section.finish(cx);
    let admin_token_env = match admin_token_env {
        Some(name) => Some(name?),
        None => None,
    };
    Some(DashboardConfig { admin_token_env, open_dev_mode: open_dev_mode? })
}
