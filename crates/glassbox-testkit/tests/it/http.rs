//! Plain HTTP against the fixture, the way curl or any other client talks to ClickHouse.

use glassbox_testkit::ClickHouseFixture;

/// `base` with these URL query parameters.
fn with_query(base: impl AsRef<str>, pairs: &[(&str, &str)]) -> String {
    url::Url::parse_with_params(base.as_ref(), pairs).unwrap().to_string()
}

fn http() -> reqwest::Client {
    // ClickHouseFixture::start has installed the rustls crypto provider.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn ping_get_and_read_only_get() {
    let fixture = ClickHouseFixture::start().await.unwrap();
    let http = http();
    let url = fixture.url();

    let ping = http.get(format!("{url}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.unwrap(), "Ok.\n");

    let answer = http
        .get(with_query(
            format!("{url}/"),
            &[("query", "SELECT number, toString(number * 2) FROM system.numbers LIMIT 3")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["X-ClickHouse-Format"], "TabSeparated");
    let summary: serde_json::Value =
        serde_json::from_str(answer.headers()["X-ClickHouse-Summary"].to_str().unwrap()).unwrap();
    assert_eq!(summary["read_rows"], "3");
    assert_eq!(answer.text().await.unwrap(), "0\t0\n1\t2\n2\t4\n");

    let json = http.get(format!("{url}/?query=SELECT%201%20AS%20x%20FORMAT%20JSONEachRow")).send().await.unwrap();
    assert_eq!(json.headers()["X-ClickHouse-Format"], "JSONEachRow");
    assert_eq!(json.text().await.unwrap(), "{\"x\":1}\n");

    // GET is read-only, as on a server.
    let refused = http.get(with_query(format!("{url}/"), &[("query", "CREATE DATABASE nope")])).send().await.unwrap();
    assert_eq!(refused.headers()["X-ClickHouse-Exception-Code"], "164");
    assert!(refused.text().await.unwrap().contains("(READONLY)"));
    assert_eq!(fixture.query_text("EXISTS DATABASE nope").await.unwrap(), "0\n");
}

#[tokio::test]
async fn inserts_in_text_formats_with_and_without_chunking() {
    let fixture = ClickHouseFixture::start().await.unwrap();
    let db = fixture.fresh_database().await.unwrap();
    let http = http();
    let url = format!("{}/", fixture.url());
    fixture
        .query_text(&format!(
            "CREATE TABLE {db}.t (id UInt32, name String, at DateTime64(3, 'UTC')) \
             ENGINE = MergeTree ORDER BY id"
        ))
        .await
        .unwrap();

    // SQL in ?query=, rows in the body; `database` picks the database.
    let json = http
        .post(with_query(&url, &[("database", db.as_str()), ("query", "INSERT INTO t FORMAT JSONEachRow")]))
        .body("{\"id\":1,\"name\":\"one\",\"at\":\"2026-01-01 00:00:00.001\"}\n{\"id\":2,\"name\":\"two\",\"at\":\"2026-01-01 00:00:00.002\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
    let summary: serde_json::Value =
        serde_json::from_str(json.headers()["X-ClickHouse-Summary"].to_str().unwrap()).unwrap();
    assert_eq!(summary["written_rows"], "2");

    // A chunked body (Transfer-Encoding: chunked), split mid-row.
    let chunks: Vec<Result<&'static str, std::io::Error>> =
        vec![Ok("3\tthree\t2026-01-01 00:00:00.003\n4\tfo"), Ok("ur\t2026-01-01 00:00:00.004\n")];
    let tsv = http
        .post(with_query(&url, &[("database", db.as_str()), ("query", "INSERT INTO t FORMAT TabSeparated")]))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(tsv.status(), 200, "{}", tsv.text().await.unwrap());

    // VALUES in the body; and the whole INSERT with its data in the body.
    let values = http
        .post(with_query(&url, &[("query", &format!("INSERT INTO {db}.t VALUES"))]))
        .body("(5, 'five', '2026-01-01 00:00:00.005')")
        .send()
        .await
        .unwrap();
    assert_eq!(values.status(), 200, "{}", values.text().await.unwrap());
    let inline = http
        .post(&url)
        .body(format!("INSERT INTO {db}.t FORMAT CSV\n6,six,2026-01-01 00:00:00.006\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(inline.status(), 200, "{}", inline.text().await.unwrap());

    let all = fixture.query_text(&format!("SELECT id, name, at FROM {db}.t ORDER BY id FORMAT CSV")).await.unwrap();
    assert_eq!(
        all,
        "1,\"one\",\"2026-01-01 00:00:00.001\"\n2,\"two\",\"2026-01-01 00:00:00.002\"\n\
         3,\"three\",\"2026-01-01 00:00:00.003\"\n4,\"four\",\"2026-01-01 00:00:00.004\"\n\
         5,\"five\",\"2026-01-01 00:00:00.005\"\n6,\"six\",\"2026-01-01 00:00:00.006\"\n"
    );
}

#[tokio::test]
async fn params_in_the_url_and_in_multipart_form_data() {
    let fixture = ClickHouseFixture::start().await.unwrap();
    let http = http();
    let url = format!("{}/", fixture.url());

    let in_url = http
        .post(with_query(&url, &[("param_n", "41"), ("param_s", "a\\tb")]))
        .body("SELECT {n:UInt8} + 1, {s:String} = concat('a', char(9), 'b')")
        .send()
        .await
        .unwrap();
    assert_eq!(in_url.text().await.unwrap(), "42\t1\n");

    let boundary = "glassbox-boundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nSELECT {{who:String}} || '!'\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"param_who\"\r\n\r\nworld\r\n--{boundary}--\r\n"
    );
    let multipart = http
        .post(&url)
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.text().await.unwrap(), "world!\n");
}

#[tokio::test]
async fn errors_look_like_the_servers() {
    let fixture = ClickHouseFixture::start().await.unwrap();
    let http = http();
    let url = format!("{}/", fixture.url());

    let cases = [
        ("SELECT * FROM default.missing", 404, "60", "(UNKNOWN_TABLE)"),
        ("SELEC 1", 400, "62", "(SYNTAX_ERROR)"),
        ("SELECT toUInt8('x')", 400, "6", "(CANNOT_PARSE_TEXT)"),
        ("SELECT throwIf(1, 'boom')", 500, "395", "boom"),
    ];
    for (sql, status, code, text) in cases {
        let answer = http.post(&url).body(sql).send().await.unwrap();
        assert_eq!(answer.status(), status, "{sql}");
        assert_eq!(answer.headers()["X-ClickHouse-Exception-Code"], code, "{sql}");
        let body = answer.text().await.unwrap();
        assert!(body.starts_with(&format!("Code: {code}. DB::Exception: ")), "{sql}: {body}");
        assert!(body.contains(text), "{sql}: {body}");
    }

    let lost = http.get(format!("{}/no/such/handler", fixture.url())).send().await.unwrap();
    assert_eq!(lost.status(), 404);
}
