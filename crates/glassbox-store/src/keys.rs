//! API keys and what they spent: the [`KeyStore`] trait, implemented by both backends.
//!
//! Only a key's SHA-256 is stored, never the key: keys are 256-bit random values, so a fast
//! hash is as good as a password hash here (nobody can brute-force 2^256), and checking one
//! costs microseconds on every request. The spend query is what period budgets are rebuilt
//! from when a server starts: the usage rows summed per tenant and key.

use async_trait::async_trait;

use crate::backend::StoreError;
use crate::query::TimeRange;

/// One API key as stored (`glassbox keys create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key's public id: goes into usage rows and spans (`glassbox.api_key_id`).
    pub id: String,
    pub tenant: String,
    /// SHA-256 of the key, 64 lower-case hex digits.
    pub key_sha256: String,
    /// `None`: every agent.
    pub agents: Option<Vec<String>>,
    /// `None`: every workflow.
    pub workflows: Option<Vec<String>>,
    /// Nanoseconds since the Unix epoch.
    pub created_ns: i64,
}

/// Usage summed over one tenant and key (the key id is "" for calls made without a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub tenant: String,
    pub api_key_id: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nano_usd: i64,
}

/// API keys and their spend; every backend answers identically.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a key; a key with the same id is replaced.
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Every stored key, ordered by id.
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Usage rows with a timestamp in `[from, to)`, summed per (tenant, key id), ordered by
    /// tenant then key id.
    async fn usage_by_key(&self, range: &TimeRange) -> Result<Vec<KeyUsage>, StoreError>;
}
