//! API keys as dashboard credentials: a [`ResolveViewer`] over the server's keys
//! (`crate::access`) and the admin token.
//!
//! Which keys count: every key that may use every agent and every workflow (no `agents` /
//! `workflows` list) and names a tenant. It sees that tenant's data only (`Scope::Tenant`): a
//! key restricted to some agents is refused, because the dashboard shows all of its tenant's
//! agents. The admin token still gives `Scope::Admin`.
//!
//! A key is presented as `Authorization: Bearer <key>` or through the login form. The form's
//! cookie holds neither the key nor its stored SHA-256: it is `k` + SHA-256(session secret,
//! key hash), with a session secret drawn at start. Reading the store's hashes therefore does
//! not let anyone mint a session, and sessions end when the server restarts.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::ResolveViewer;
use super::access::{Scope, Viewer, constant_time_eq, cookie_value, digest, session_cookie};
use crate::access::secret::{self, RandomError};

/// The admin token and the tenant-scoped keys that may open the dashboard.
pub struct KeyViewers {
    /// SHA-256 of the admin token, when one is configured.
    admin: Option<[u8; 32]>,
    /// Key hash -> tenant, for Bearer headers.
    by_hash: HashMap<[u8; 32], String>,
    /// Session cookie value -> tenant, for the login form's cookie.
    by_session: HashMap<String, String>,
    session_secret: [u8; 32],
}

impl std::fmt::Debug for KeyViewers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyViewers").field("admin", &self.admin.is_some()).field("keys", &self.by_hash.len()).finish()
    }
}

impl KeyViewers {
    /// From the admin token (if any) and the server's keys; keys that do not count as
    /// dashboard credentials (see the module doc) are left out.
    pub fn new(admin_token: Option<&str>, keys: &crate::access::Access) -> Result<Self, RandomError> {
        let session_secret = secret::random_bytes::<32>()?;
        let mut viewers = Self {
            admin: admin_token.map(digest),
            by_hash: HashMap::new(),
            by_session: HashMap::new(),
            session_secret,
        };
        for key in keys.keys() {
            if key.is_unrestricted() && !key.tenant.is_empty() {
                viewers.by_hash.insert(*key.sha256(), key.tenant.clone());
                viewers.by_session.insert(viewers.session_for(key.sha256()), key.tenant.clone());
            }
        }
        Ok(viewers)
    }

    /// How many keys may open the dashboard.
    pub fn key_count(&self) -> usize {
        self.by_hash.len()
    }

    fn session_for(&self, key_hash: &[u8; 32]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"glassbox-dashboard-key-session-v1\0");
        hasher.update(self.session_secret);
        hasher.update(key_hash);
        format!("k{}", secret::hex(&hasher.finalize()))
    }

    fn viewer_for_token(&self, token: &str) -> Option<Viewer> {
        let hash = digest(token);
        if self.admin.is_some_and(|admin| constant_time_eq(&hash, &admin)) {
            return Some(Viewer { scope: Scope::Admin, signed_in: true });
        }
        // The lookup key is a SHA-256 of a 256-bit key: the map's timing reveals nothing usable.
        self.by_hash.get(&hash).map(|tenant| Viewer { scope: Scope::Tenant(tenant.clone()), signed_in: true })
    }
}

impl ResolveViewer for KeyViewers {
    fn resolve(&self, headers: &HeaderMap) -> Option<Viewer> {
        let bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.strip_prefix("Bearer "))
            .find_map(|token| self.viewer_for_token(token.trim()));
        if bearer.is_some() {
            return bearer;
        }
        let cookie = session_cookie(headers)?;
        if self.admin.is_some_and(|admin| constant_time_eq(cookie.as_bytes(), cookie_value(&admin).as_bytes())) {
            return Some(Viewer { scope: Scope::Admin, signed_in: true });
        }
        self.by_session.get(cookie).map(|tenant| Viewer { scope: Scope::Tenant(tenant.clone()), signed_in: true })
    }

    fn login(&self, token: &str) -> Option<String> {
        let hash = digest(token);
        match self.admin {
            Some(admin) if constant_time_eq(&hash, &admin) => Some(cookie_value(&admin)),
            _ => self.by_hash.contains_key(&hash).then(|| self.session_for(&hash)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::HeaderValue;
    use axum::http::header::COOKIE;
    use glassbox_config::{BudgetConfig, KeyConfig, KeySecret};
    use glassbox_store::pricing::PricingTable;

    use super::*;
    use crate::dashboard::access::COOKIE_NAME;

    fn key(id: &str, tenant: &str, value: &str, agents: Option<Vec<String>>) -> KeyConfig {
        KeyConfig {
            id: id.into(),
            tenant: tenant.into(),
            secret: KeySecret::Sha256(secret::hex(&secret::sha256(value))),
            agents,
            workflows: None,
            rate_limit: None,
            budget: BudgetConfig::default(),
        }
    }

    fn viewers() -> KeyViewers {
        let keys = [
            key("acme-all", "acme", "gbx_acme", None),
            key("acme-one", "acme", "gbx_acme_one_agent", Some(vec!["assistant".into()])),
            key("globex", "globex", "gbx_globex", None),
        ];
        let access =
            crate::access::Access::build(&[], &keys, &[], &|_| None, Arc::new(PricingTable::shipped())).unwrap();
        KeyViewers::new(Some("admin-token"), &access).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        headers
    }

    fn cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&format!("{COOKIE_NAME}={value}")).unwrap());
        headers
    }

    #[test]
    fn admin_token_is_admin_and_unrestricted_keys_see_their_tenant() {
        let viewers = viewers();
        assert_eq!(viewers.key_count(), 2);
        assert_eq!(viewers.resolve(&bearer("admin-token")).map(|v| v.scope), Some(Scope::Admin));
        assert_eq!(viewers.resolve(&bearer("gbx_acme")).map(|v| v.scope), Some(Scope::Tenant("acme".into())));
        assert_eq!(viewers.resolve(&bearer("gbx_globex")).map(|v| v.scope), Some(Scope::Tenant("globex".into())));
        assert!(viewers.resolve(&bearer("gbx_acme_one_agent")).is_none(), "a restricted key is no credential");
        assert!(viewers.resolve(&bearer("wrong")).is_none());
        assert!(viewers.resolve(&HeaderMap::new()).is_none());
    }

    #[test]
    fn the_login_cookie_holds_neither_the_key_nor_its_hash() {
        let viewers = viewers();
        let session = viewers.login("gbx_acme").unwrap();
        assert!(!session.contains("gbx_acme"));
        assert!(!session.contains(&secret::hex(&secret::sha256("gbx_acme"))));
        assert_eq!(viewers.resolve(&cookie(&session)).map(|v| v.scope), Some(Scope::Tenant("acme".into())));
        let admin = viewers.login("admin-token").unwrap();
        assert_eq!(viewers.resolve(&cookie(&admin)).map(|v| v.scope), Some(Scope::Admin));
        assert!(viewers.login("gbx_acme_one_agent").is_none());
        assert!(viewers.login("nope").is_none());
        assert!(viewers.resolve(&cookie("k0000")).is_none());
        // Another process (another session secret) does not accept the cookie.
        assert!(self::viewers().resolve(&cookie(&session)).is_none());
    }
}
