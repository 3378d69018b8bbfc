//! Proves the ClickHouse fixture against the real `clickhouse` crate (lz4 and validation on)
//! and plain HTTP. Each test starts its own fixture.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod http;
mod lifecycle;

use glassbox_testkit::ClickHouseFixture;

/// A running fixture, a fresh database in it, and a `clickhouse` client for that database
/// (default options: lz4 compression and row validation on).
pub async fn setup() -> (ClickHouseFixture, clickhouse::Client, String) {
    let fixture = ClickHouseFixture::start().await.expect("fixture starts");
    let db = fixture.fresh_database().await.expect("fresh database");
    let client = clickhouse::Client::default().with_url(fixture.url()).with_database(&db);
    (fixture, client, db)
}
