//! Who may see the dashboard. An admin token from the environment variable that
//! `[dashboard] admin_token_env` names, presented as `Authorization: Bearer <token>` or through
//! the login form, which sets an HttpOnly cookie holding a digest of the token (never the
//! token itself). Without a token the dashboard is closed, unless `open_dev_mode` is set; then
//! every page says that it is open.
//!
//! Every page handler receives a [`Viewer`] from [`require_viewer`]. Its [`Scope`] is `Admin`
//! or `Tenant(t)`: tenant-scoped API keys plug in through [`Access::Resolver`] (see
//! `dashboard/keys.rs`), and every page applies [`Viewer::forced_tenant`] to its queries.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use glassbox_config::DashboardConfig;
use sha2::{Digest, Sha256};

use super::{Dashboard, PageError};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "glassbox_dashboard";

/// How the dashboard is protected.
#[derive(Clone)]
pub enum Access {
    /// Requests must present the admin token (or the cookie made from it).
    Token {
        /// SHA-256 of the token; the token itself is not kept.
        digest: [u8; 32],
    },
    /// No token configured and `open_dev_mode` set: everyone is admin, and pages say so.
    OpenDevelopment,
    /// No token configured: every page answers 403 and says how to configure one.
    Closed,
    /// Credentials checked by another part of the server (API keys scoped to a tenant): it
    /// maps a request's headers to a viewer, or refuses with `None`.
    Resolver(Arc<dyn ResolveViewer>),
}

/// Maps a request's credentials to a [`Viewer`]; the hook for tenant-scoped keys.
pub trait ResolveViewer: Send + Sync + 'static {
    fn resolve(&self, headers: &HeaderMap) -> Option<Viewer>;

    /// The session cookie's value for a credential typed into the login form (never the
    /// credential itself), or `None` when it is not one.
    fn login(&self, _token: &str) -> Option<String> {
        None
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Token { .. } => "Access::Token",
            Self::OpenDevelopment => "Access::OpenDevelopment",
            Self::Closed => "Access::Closed",
            Self::Resolver(_) => "Access::Resolver",
        })
    }
}

impl Access {
    /// From `[dashboard]` and the environment; an unset or empty variable means no token.
    pub fn from_config(config: &DashboardConfig, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let token = config.admin_token_env.as_deref().and_then(env).filter(|token| !token.trim().is_empty());
        match token {
            Some(token) => Self::with_token(&token),
            None if config.open_dev_mode => Self::OpenDevelopment,
            None => Self::Closed,
        }
    }

    pub fn with_token(token: &str) -> Self {
        Self::Token { digest: digest(token) }
    }

    fn accepts(&self, headers: &HeaderMap) -> bool {
        let Self::Token { digest: expected } = self else {
            return false;
        };
        let bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.strip_prefix("Bearer "))
            .any(|token| constant_time_eq(&digest(token.trim()), expected));
        bearer
            || session_cookie(headers)
                .is_some_and(|value| constant_time_eq(value.as_bytes(), &cookie_value(expected).into_bytes()))
    }

    /// The cookie value the login form sets for `token`, when it is a credential.
    pub fn login(&self, token: &str) -> Option<String> {
        match self {
            Self::Token { digest: expected } if constant_time_eq(&digest(token), expected) => {
                Some(cookie_value(expected))
            }
            Self::Resolver(resolver) => resolver.login(token),
            _ => None,
        }
    }
}

pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The cookie holds a second digest, so neither the token nor the value that checks a Bearer
/// header is stored in the browser.
pub(super) fn cookie_value(token_digest: &[u8; 32]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"glassbox-dashboard-session-v1\0");
    hasher.update(token_digest);
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// What a viewer may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant.
    Admin,
    /// Only this tenant's data (tenant-scoped API keys).
    Tenant(String),
}

/// The authenticated viewer of a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub scope: Scope,
    /// Signed in with a credential (shows the sign-out button).
    pub signed_in: bool,
}

impl Viewer {
    /// The tenant every query of this viewer must be limited to.
    pub fn forced_tenant(&self) -> Option<&str> {
        match &self.scope {
            Scope::Admin => None,
            Scope::Tenant(tenant) => Some(tenant),
        }
    }

    /// Pages that show data of no particular tenant (server-wide settings) call this.
    pub fn require_admin(&self) -> Result<(), PageError> {
        match self.scope {
            Scope::Admin => Ok(()),
            Scope::Tenant(_) => Err(PageError::Forbidden("this page needs an admin credential".into())),
        }
    }
}

/// Lets a request through with its [`Viewer`] in the extensions, or answers: a redirect to the
/// login form (pages) or 401 (API-style requests with a wrong Bearer token), 403 when closed.
pub async fn require_viewer(State(dashboard): State<Dashboard>, mut request: Request, next: Next) -> Response {
    let viewer = match &dashboard.access {
        Access::OpenDevelopment => Viewer { scope: Scope::Admin, signed_in: false },
        Access::Closed => {
            return PageError::Forbidden(
                "the dashboard has no admin credential: set [dashboard] admin_token_env in the config and that \
                 variable in the environment (or open_dev_mode = true on a development machine)"
                    .into(),
            )
            .into_response();
        }
        Access::Resolver(resolver) => match resolver.resolve(request.headers()) {
            Some(viewer) => viewer,
            None if request.headers().contains_key(AUTHORIZATION) => return PageError::Unauthorized.into_response(),
            None => return Redirect::to("/dashboard/login").into_response(),
        },
        access @ Access::Token { .. } => {
            if !access.accepts(request.headers()) {
                if request.headers().contains_key(AUTHORIZATION) {
                    return PageError::Unauthorized.into_response();
                }
                return Redirect::to("/dashboard/login").into_response();
            }
            Viewer { scope: Scope::Admin, signed_in: true }
        }
    };
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_token_or_its_cookie_gets_in() {
        let access = Access::with_token("correct horse");
        let mut headers = HeaderMap::new();
        assert!(!access.accepts(&headers));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer correct horse"));
        assert!(access.accepts(&headers));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer wrong"));
        assert!(!access.accepts(&headers));
        let cookie = access.login("correct horse").unwrap_or_default();
        assert!(!cookie.contains("correct"));
        assert_eq!(access.login("wrong"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={cookie}")).unwrap_or(HeaderValue::from_static("")),
        );
        assert!(access.accepts(&headers));
        assert!(!Access::OpenDevelopment.accepts(&headers));
    }

    #[test]
    fn config_decides_the_mode() {
        let env = |name: &str| (name == "TOKEN").then(|| "t0ken".to_owned());
        let config = |name: Option<&str>, open| DashboardConfig {
            admin_token_env: name.map(str::to_owned),
            open_dev_mode: open,
        };
        assert!(matches!(Access::from_config(&config(Some("TOKEN"), true), &env), Access::Token { .. }));
        assert!(matches!(Access::from_config(&config(Some("UNSET"), true), &env), Access::OpenDevelopment));
        assert!(matches!(Access::from_config(&config(Some("UNSET"), false), &env), Access::Closed));
        assert!(matches!(Access::from_config(&config(None, false), &env), Access::Closed));
    }
}
