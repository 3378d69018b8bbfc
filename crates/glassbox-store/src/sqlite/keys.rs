//! [`KeyStore`] on SQLite: the `api_keys` table and the spend query over `usage`.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::codec::from_sql_int;
use super::{SqliteBackend, store_error};
use crate::backend::StoreError;
use crate::keys::{KeyStore, KeyUsage, StoredKey};
use crate::query::TimeRange;

const INSERT_KEY: &str = "INSERT OR REPLACE INTO api_keys (Id, Tenant, KeySha256, Agents, Workflows, CreatedNs) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const LIST_KEYS: &str = "SELECT Id, Tenant, KeySha256, Agents, Workflows, CreatedNs FROM api_keys ORDER BY Id";
const USAGE_BY_KEY: &str = "SELECT Tenant, ApiKeyId, COUNT(*), SUM(InputTokens), SUM(OutputTokens), SUM(CostNanoUsd) \
     FROM usage WHERE Timestamp >= ?1 AND Timestamp < ?2 GROUP BY Tenant, ApiKeyId ORDER BY Tenant, ApiKeyId";

fn ids_to_json(ids: &Option<Vec<String>>) -> Option<String> {
    ids.as_ref().map(|ids| serde_json::Value::from(ids.clone()).to_string())
}

fn ids_from_json(text: Option<String>) -> Result<Option<Vec<String>>, StoreError> {
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| StoreError::Rejected {
            message: format!("a stored api key has a malformed id list: {error}"),
            source: Some(Box::new(error)),
        })
    })
    .transpose()
}

fn insert_key(connection: &Connection, key: &StoredKey) -> Result<(), StoreError> {
    connection
        .execute(
            INSERT_KEY,
            params![
                key.id,
                key.tenant,
                key.key_sha256,
                ids_to_json(&key.agents),
                ids_to_json(&key.workflows),
                key.created_ns
            ],
        )
        .map_err(store_error)?;
    Ok(())
}

type RawKey = (String, String, String, Option<String>, Option<String>, i64);

fn list_keys(connection: &Connection) -> Result<Vec<StoredKey>, StoreError> {
    let mut statement = connection.prepare_cached(LIST_KEYS).map_err(store_error)?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)))
        .map_err(store_error)?
        .collect::<Result<Vec<RawKey>, _>>()
        .map_err(store_error)?;
    rows.into_iter()
        .map(|(id, tenant, key_sha256, agents, workflows, created_ns)| {
            Ok(StoredKey {
                id,
                tenant,
                key_sha256,
                agents: ids_from_json(agents)?,
                workflows: ids_from_json(workflows)?,
                created_ns,
            })
        })
        .collect()
}

fn usage_by_key(connection: &Connection, range: &TimeRange) -> Result<Vec<KeyUsage>, StoreError> {
    let mut statement = connection.prepare_cached(USAGE_BY_KEY).map_err(store_error)?;
    let rows = statement
        .query_map(params![range.from_ns, range.to_ns], |row| {
            Ok(KeyUsage {
                tenant: row.get(0)?,
                api_key_id: row.get(1)?,
                calls: from_sql_int(row.get(2)?),
                input_tokens: from_sql_int(row.get(3)?),
                output_tokens: from_sql_int(row.get(4)?),
                cost_nano_usd: row.get(5)?,
            })
        })
        .map_err(store_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
}

#[async_trait]
impl KeyStore for SqliteBackend {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with_writer(move |connection| insert_key(connection, &key)).await
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.with_reader(list_keys).await
    }

    async fn usage_by_key(&self, range: &TimeRange) -> Result<Vec<KeyUsage>, StoreError> {
        let range = *range;
        self.with_reader(move |connection| usage_by_key(connection, &range)).await
    }
}
