//! [`KeyStore`] on ClickHouse: the `api_keys` table (ReplacingMergeTree, read with `FINAL`)
//! and the spend query over `usage`. Values go in as bound values only.

use async_trait::async_trait;
use clickhouse::Row;
use serde::Deserialize;

use super::ClickHouseBackend;
use super::error::Operation;
use crate::backend::StoreError;
use crate::keys::{KeyStore, KeyUsage, StoredKey};
use crate::query::TimeRange;

const INSERT_KEY_SQL: &str = "INSERT INTO api_keys (Id, Tenant, KeySha256, AllAgents, Agents, AllWorkflows, Workflows, CreatedNs) \
     SELECT ?, ?, ?, ?, ?, ?, ?, toInt64(?)";
const LIST_KEYS_SQL: &str = "SELECT Id, Tenant, KeySha256, AllAgents, Agents, AllWorkflows, Workflows, CreatedNs \
     FROM api_keys FINAL ORDER BY Id";
const USAGE_BY_KEY_SQL: &str = "SELECT toString(Tenant) AS tenant, toString(ApiKeyId) AS api_key_id, count() AS calls,
    sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens,
    CAST(sum(CostUsd), 'Decimal(38, 9)') AS cost
FROM usage
WHERE Timestamp >= fromUnixTimestamp64Nano(toInt64(?)) AND Timestamp < fromUnixTimestamp64Nano(toInt64(?))
GROUP BY tenant, api_key_id
ORDER BY tenant ASC, api_key_id ASC";

#[derive(Row, Deserialize)]
struct KeyFetch {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Tenant")]
    tenant: String,
    #[serde(rename = "KeySha256")]
    key_sha256: String,
    #[serde(rename = "AllAgents")]
    all_agents: bool,
    #[serde(rename = "Agents")]
    agents: Vec<String>,
    #[serde(rename = "AllWorkflows")]
    all_workflows: bool,
    #[serde(rename = "Workflows")]
    workflows: Vec<String>,
    #[serde(rename = "CreatedNs")]
    created_ns: i64,
}

#[derive(Row, Deserialize)]
struct KeyUsageFetch {
    tenant: String,
    api_key_id: String,
    calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// `Decimal(38, 9)`: nano-USD.
    cost: i128,
}

#[async_trait]
impl KeyStore for ClickHouseBackend {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let query = self
            .inner
            .client
            .query(INSERT_KEY_SQL)
            .bind(key.id.as_str())
            .bind(key.tenant.as_str())
            .bind(key.key_sha256.as_str())
            .bind(key.agents.is_none())
            .bind(key.agents.clone().unwrap_or_default())
            .bind(key.workflows.is_none())
            .bind(key.workflows.clone().unwrap_or_default())
            .bind(key.created_ns);
        self.timed(Operation::InsertKey, query.execute()).await
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = self.inner.client.query(LIST_KEYS_SQL).fetch_all::<KeyFetch>();
        let rows = self.timed(Operation::ListKeys, rows).await?;
        Ok(rows
            .into_iter()
            .map(|row| StoredKey {
                id: row.id,
                tenant: row.tenant,
                key_sha256: row.key_sha256,
                agents: (!row.all_agents).then_some(row.agents),
                workflows: (!row.all_workflows).then_some(row.workflows),
                created_ns: row.created_ns,
            })
            .collect())
    }

    async fn usage_by_key(&self, range: &TimeRange) -> Result<Vec<KeyUsage>, StoreError> {
        let rows = self
            .inner
            .client
            .query(USAGE_BY_KEY_SQL)
            .bind(range.from_ns)
            .bind(range.to_ns)
            .fetch_all::<KeyUsageFetch>();
        let rows = self.timed(Operation::UsageByKey, rows).await?;
        rows.into_iter()
            .map(|row| {
                let cost_nano_usd = i64::try_from(row.cost).map_err(|source| StoreError::Rejected {
                    message: format!("the cost of tenant {:?} does not fit in i64 nano-USD", row.tenant),
                    source: Some(Box::new(source)),
                })?;
                Ok(KeyUsage {
                    tenant: row.tenant,
                    api_key_id: row.api_key_id,
                    calls: row.calls,
                    input_tokens: row.input_tokens,
                    output_tokens: row.output_tokens,
                    cost_nano_usd,
                })
            })
            .collect()
    }
}
