//! Starting, stopping, killing and restarting the fixture.

use std::time::{Duration, Instant};

use clickhouse::Row;
use glassbox_testkit::{ClickHouseFixture, FixtureError};
use serde::{Deserialize, Serialize};

use crate::setup;

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Event {
    id: u64,
    name: String,
}

async fn insert_events(client: &clickhouse::Client, ids: std::ops::Range<u64>) {
    let mut insert = client.insert::<Event>("events").await.unwrap();
    for id in ids {
        insert.write(&Event { id, name: format!("event {id}") }).await.unwrap();
    }
    insert.end().await.unwrap();
}

async fn all_events(client: &clickhouse::Client) -> Vec<Event> {
    client.query("SELECT ?fields FROM events ORDER BY id").fetch_all::<Event>().await.unwrap()
}

async fn create_events(client: &clickhouse::Client) {
    client
        .query("CREATE TABLE events (id UInt64, name String) ENGINE = MergeTree ORDER BY id")
        .execute()
        .await
        .unwrap();
}

#[tokio::test]
async fn starts_fast_and_answers_select_1() {
    let started = Instant::now();
    let fixture = ClickHouseFixture::start().await.unwrap();
    let start_time = started.elapsed();
    assert!(fixture.url().starts_with("http://127.0.0.1:"));
    assert_eq!(fixture.url(), format!("http://127.0.0.1:{}", fixture.port()));
    assert_eq!(fixture.query_text("SELECT 1").await.unwrap(), "1\n");

    let client = clickhouse::Client::default().with_url(fixture.url());
    assert_eq!(client.query("SELECT 1").fetch_one::<u8>().await.unwrap(), 1);
    let rounds = 200;
    let timer = Instant::now();
    for _ in 0..rounds {
        client.query("SELECT 1").fetch_one::<u8>().await.unwrap();
    }
    let round_trip = timer.elapsed() / rounds;
    eprintln!("fixture start: {start_time:?}; `SELECT 1` round trip with the clickhouse crate: {round_trip:?}");
    // Generous bounds: they catch a missing TCP_NODELAY (+40 ms a request), not slow machines.
    assert!(round_trip < Duration::from_millis(25), "SELECT 1 took {round_trip:?}");

    let a = fixture.fresh_database().await.unwrap();
    let b = fixture.fresh_database().await.unwrap();
    assert!(a.starts_with("test_") && b.starts_with("test_") && a != b);
    let databases = fixture.query_text("SHOW DATABASES").await.unwrap();
    assert!(databases.lines().any(|line| line == a), "{databases}");
}

#[tokio::test]
async fn fixtures_are_independent() {
    let (one, two) = tokio::join!(ClickHouseFixture::start(), ClickHouseFixture::start());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_ne!(one.port(), two.port());
    assert_ne!(one.data_dir(), two.data_dir());
    let db = one.fresh_database().await.unwrap();
    let on_two = two.query_text(&format!("EXISTS DATABASE {db}")).await.unwrap();
    assert_eq!(on_two, "0\n");
}

#[tokio::test]
async fn restart_keeps_the_data() {
    let (mut fixture, client, _db) = setup().await;
    let port = fixture.port();
    create_events(&client).await;
    insert_events(&client, 0..100).await;

    fixture.restart().await.unwrap();
    assert_eq!(fixture.port(), port);
    // The same client (same URL) goes on working after the restart.
    let events = all_events(&client).await;
    assert_eq!(events.len(), 100);
    assert_eq!(events[42], Event { id: 42, name: "event 42".to_owned() });

    insert_events(&client, 100..150).await;
    assert_eq!(all_events(&client).await.len(), 150);
}

#[tokio::test]
async fn stop_fails_requests_until_restart() {
    let (mut fixture, client, _db) = setup().await;
    create_events(&client).await;
    insert_events(&client, 0..10).await;

    fixture.stop().await;
    let err = client.query("SELECT count() FROM events").fetch_one::<u64>().await.unwrap_err();
    assert!(matches!(err, clickhouse::error::Error::Network(_)), "{err:?}");
    let mut insert = client.insert::<Event>("events").await.unwrap(); // schema is cached
    let failed = async {
        insert.write(&Event { id: 99, name: "lost".to_owned() }).await?;
        insert.end().await
    }
    .await;
    assert!(failed.is_err());
    assert!(matches!(fixture.query_text("SELECT 1").await, Err(FixtureError::Http(_))));
    // Stopping twice is harmless.
    fixture.stop().await;

    fixture.restart().await.unwrap();
    assert_eq!(all_events(&client).await.len(), 10);
}

#[tokio::test]
async fn killed_fixture_loses_nothing_that_was_acknowledged() {
    let (mut fixture, client, _db) = setup().await;
    create_events(&client).await;
    for batch in 0..5 {
        insert_events(&client, batch * 20..batch * 20 + 20).await;
    }
    fixture.kill().await;
    assert!(client.query("SELECT 1").fetch_one::<u8>().await.is_err());
    fixture.restart().await.unwrap();
    let events = all_events(&client).await;
    assert_eq!(events.len(), 100);
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_missing_python_fails_with_the_setup_hint() {
    let err = ClickHouseFixture::start_with_python("/nonexistent/glassbox/venv/bin/python").await.unwrap_err();
    assert!(matches!(err, FixtureError::NotInstalled(_)), "{err:?}");
    assert!(err.to_string().contains("./tests/run.sh"), "{err}");

    // A Python without chDB (the system one, when there is one) fails the same way.
    let system_python =
        ["/usr/bin/python3", "/usr/local/bin/python3"].into_iter().map(std::path::PathBuf::from).find(|path| {
            path.is_file()
                && std::process::Command::new(path)
                    .args(["-c", "import chdb"])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|status| !status.success())
        });
    if let Some(python) = system_python {
        let err = ClickHouseFixture::start_with_python(python).await.unwrap_err();
        assert!(matches!(err, FixtureError::NotInstalled(_)), "{err:?}");
        assert!(err.to_string().contains("./tests/run.sh"), "{err}");
    }
}

#[tokio::test]
async fn drop_removes_the_process_and_the_data() {
    let fixture = ClickHouseFixture::start().await.unwrap();
    let data_dir = fixture.data_dir().to_owned();
    let url = fixture.url();
    assert!(data_dir.exists());
    drop(fixture);
    assert!(!data_dir.exists());
    let client = clickhouse::Client::default().with_url(url);
    assert!(client.query("SELECT 1").fetch_one::<u8>().await.is_err());
}
