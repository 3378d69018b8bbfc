//! Hostile and slow clients against the `glassbox` binary, all at once: slow headers
//! (slowloris), slow bodies, oversized bodies (with a length and chunked), and slow readers of
//! big streams, while normal clients keep calling. The limits hold with clear answers (a closed
//! connection for headers that never end, 408 and 413 with JSON bodies), the slow readers get
//! their whole stream, the server's peak memory stays far below what buffering the attack
//! would take, and every normal request succeeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::start_server;

const SLOW_HEADER_CLIENTS: usize = 32;
const SLOW_BODY_CLIENTS: usize = 32;
const OVERSIZED_CLIENTS: usize = 16;
/// What each oversized client tries to send: 50 MiB, against a 1 MiB limit.
const OVERSIZED_BYTES: usize = 50 << 20;
const CHUNKED_CLIENTS: usize = 4;
const SLOW_READERS: usize = 4;
const NORMAL_CLIENTS: usize = 8;

/// The server's resident memory in KiB: (now, peak).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A response read off a raw connection: status and JSON body, or how the connection ended.
#[derive(Debug)]
enum Answer {
    Response { status: u16, body: Value },
    /// Closed (EOF or reset) before any response byte.
    ClosedWithoutResponse,
    /// Anything else: a partial or unparsable response, or an error after response bytes.
    #[allow(dead_code, reason = "read in failure messages through Debug")]
    Broken(String),
}

/// Reads one HTTP/1.1 response with a `content-length` body from `reader`.
async fn read_answer(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> Answer {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(head_end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
            let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok());
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
            });
            if let (Some(status), Some(length)) = (status, length) {
                if buffer.len() >= head_end + 4 + length {
                    let body = &buffer[head_end + 4..head_end + 4 + length];
                    return match serde_json::from_slice(body) {
                        Ok(body) => Answer::Response { status, body },
                        Err(error) => Answer::Broken(format!("{head}: body is not JSON ({error}): {}", String::from_utf8_lossy(body))),
                    };
                }
            } else {
                return Answer::Broken(format!("unexpected head: {head}"));
            }
        }
        match reader.read(&mut chunk).await {
            Ok(0) if buffer.is_empty() => return Answer::ClosedWithoutResponse,
            Ok(0) => return Answer::Broken(format!("EOF after {} bytes: {}", buffer.len(), String::from_utf8_lossy(&buffer))),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(_) if buffer.is_empty() => return Answer::ClosedWithoutResponse,
            Err(error) => return Answer::Broken(format!("{error} after {} bytes", buffer.len())),
        }
    }
}

/// Opens a connection, writes `head`, then lets `write_rest` write what follows while the
/// response is read; returns the answer and whether `write_rest` was still going (cut off by
/// the server) when the answer came.
async fn exchange<F, Fut>(addr: &str, head: String, write_rest: F) -> (Answer, bool)
where
    F: FnOnce(tokio::net::tcp::OwnedWriteHalf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let stream = TcpStream::connect(addr).await.expect("connect to the server");
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.expect("write the request head");
    let writing = tokio::spawn(write_rest(writer));
    // A generous bound so that a server that never answers fails the test instead of hanging it.
    let answer = tokio::time::timeout(Duration::from_secs(120), read_answer(&mut reader))
        .await
        .unwrap_or_else(|_| Answer::Broken("no answer and no close within 120 s".to_owned()));
    let still_writing = !writing.is_finished();
    writing.abort();
    (answer, still_writing)
}

fn generate_head(extra: &str) -> String {
    format!("POST /api/agents/echo/generate HTTP/1.1\r\nhost: glassbox\r\ncontent-type: application/json\r\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_hit_the_limits_and_normal_clients_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("glassbox.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
header_read_timeout_ms = 2000
body_read_timeout_ms = 10000

[store]
sqlite_path = "{sqlite}"
spool_dir = "{spool}"

[models.mock]
provider = "mock"
model = "mock-echo"

[agents.echo]
instructions = "Repeat."
model = "mock"
"#,
            sqlite = dir.path().join("glassbox.db").display(),
            spool = dir.path().join("spool").display(),
        ),
    )
    .unwrap();
    let mut server = start_server(&config, &[]).await;
    let pid = server.child.id().expect("the server runs");
    let addr = server.url.trim_start_matches("http://").to_owned();
    glassbox_providers::install_crypto_provider();
    let client = reqwest::Client::new();
    // Warm up, then take the baseline.
    for _ in 0..20 {
        let response = client.post(format!("{}/api/agents/echo/generate", server.url)).json(&json!({"messages": "warm"})).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let (baseline_kib, _) = memory_kib(pid);

    // A fresh connection per normal request: the 2 s header timeout also closes idle
    // keep-alive connections, and a pooled one could be closed just as it is reused.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let attacks_over = Arc::new(AtomicBool::new(false));
    let normal: Vec<_> = (0..NORMAL_CLIENTS)
        .map(|worker| {
            let (client, url, attacks_over) = (client.clone(), server.url.clone(), Arc::clone(&attacks_over));
            tokio::spawn(async move {
                let mut answered = 0usize;
                while !attacks_over.load(Ordering::SeqCst) || answered == 0 {
                    let message = format!("normal {worker} {answered}");
                    let response = client.post(format!("{url}/api/agents/echo/generate")).json(&json!({"messages": message})).send().await;
                    let response = response.unwrap_or_else(|error| panic!("a normal request failed: {error}"));
                    assert_eq!(response.status(), 200, "a normal request");
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["text"], format!("You said: {message}"));
                    answered += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                answered
            })
        })
        .collect();

    let mut attacks = tokio::task::JoinSet::new();
    // Headers that never end: one more header line every 200 ms, for up to 20 s.
    for _ in 0..SLOW_HEADER_CLIENTS {
        let addr = addr.clone();
        attacks.spawn(async move {
            let (answer, still_writing) = exchange(&addr, generate_head(""), |mut writer| async move {
                for n in 0..100 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if writer.write_all(format!("x-slow-{n}: 1\r\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            })
            .await;
            assert!(matches!(answer, Answer::ClosedWithoutResponse), "slow headers: {answer:?}");
            assert!(still_writing, "the server closed the slow-header connection, not the client");
            "slow headers"
        });
    }
    // A body that trickles: one byte every 200 ms of a declared 1000.
    for _ in 0..SLOW_BODY_CLIENTS {
        let addr = addr.clone();
        attacks.spawn(async move {
            let head = generate_head("content-length: 1000\r\n\r\n{\"messages\": \"");
            let (answer, _) = exchange(&addr, head, |mut writer| async move {
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if writer.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            })
            .await;
            match answer {
                Answer::Response { status, body } => {
                    assert_eq!(status, 408, "slow body: {body}");
                    assert_eq!(body["code"], "body_timeout", "{body}");
                    assert_eq!(body["details"]["timeoutMs"], 10000, "{body}");
                    assert!(body["error"].as_str().is_some_and(|error| error.contains("10000 ms")), "{body}");
                }
                other => panic!("slow body: {other:?}"),
            }
            "slow body"
        });
    }
    // 50 MiB against the 1 MiB limit, declared up front.
    for _ in 0..OVERSIZED_CLIENTS {
        let addr = addr.clone();
        attacks.spawn(async move {
            let head = generate_head(&format!("content-length: {OVERSIZED_BYTES}\r\n\r\n"));
            let (answer, _) = exchange(&addr, head, |mut writer| async move {
                let block = vec![b'a'; 64 * 1024];
                let mut sent = 0;
                while sent < OVERSIZED_BYTES {
                    if writer.write_all(&block).await.is_err() {
                        return;
                    }
                    sent += block.len();
                }
            })
            .await;
            check_too_large(answer, "oversized");
            "oversized"
        });
    }
    // Chunked, with no length: the limit is found while reading.
    for _ in 0..CHUNKED_CLIENTS {
        let addr = addr.clone();
        attacks.spawn(async move {
            let head = generate_head("transfer-encoding: chunked\r\n\r\n");
            let (answer, _) = exchange(&addr, head, |mut writer| async move {
                let mut chunk = b"10000\r\n".to_vec();
                chunk.extend(std::iter::repeat_n(b'a', 0x10000));
                chunk.extend_from_slice(b"\r\n");
                for _ in 0..128 {
                    if writer.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            })
            .await;
            check_too_large(answer, "chunked");
            "chunked"
        });
    }
    // Slow readers of big streams: ~20,000 text deltas each, read 16 KiB every 20 ms.
    for reader in 0..SLOW_READERS {
        let (client, url) = (client.clone(), server.url.clone());
        attacks.spawn(async move {
            let words: Vec<String> = (0..20_000).map(|n| format!("w{reader}x{n}")).collect();
            let message = words.join(" ");
            let mut response =
                client.post(format!("{url}/api/agents/echo/stream")).json(&json!({"messages": message})).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.expect("the slow reader's stream") {
                body.extend_from_slice(&chunk);
                if body.len() % (16 * 1024) < chunk.len() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let text = String::from_utf8(body).unwrap();
            let data: Vec<String> = text
                .split("\n\n")
                .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("data:")).map(|d| d.trim_start().to_owned()))
                .collect();
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "the slow reader got the whole stream");
            let chunks = crate::helpers::parse_chunks(&data);
            let streamed: String =
                chunks.iter().filter(|c| c["type"] == "text-delta").filter_map(|c| c["payload"]["text"].as_str()).collect();
            assert_eq!(streamed, format!("You said: {message}"), "every delta arrived, in order");
            "slow reader"
        });
    }
    let mut finished = std::collections::BTreeMap::new();
    while let Some(attack) = attacks.join_next().await {
        *finished.entry(attack.expect("an attack's assertion failed")).or_insert(0) += 1;
    }
    attacks_over.store(true, Ordering::SeqCst);
    let mut normal_answered = 0;
    for worker in normal {
        normal_answered += worker.await.expect("a normal client's assertion failed");
    }
    let (now_kib, peak_kib) = memory_kib(pid);
    eprintln!(
        "attacks {finished:?}; {normal_answered} normal requests answered; server RSS baseline {baseline_kib} KiB, \
         now {now_kib} KiB, peak {peak_kib} KiB"
    );
    // Buffering the oversized bodies alone would take 16 x 50 MiB; the limit allows 16 x 1 MiB.
    assert!(
        peak_kib < baseline_kib + 128 * 1024,
        "the server's peak memory grew by {} MiB under the attack (baseline {baseline_kib} KiB, peak {peak_kib} KiB)",
        (peak_kib - baseline_kib) / 1024
    );
    assert!(normal_answered >= NORMAL_CLIENTS, "normal clients were answered");
    // And the server still answers afterwards.
    let response = client.post(format!("{}/api/agents/echo/generate", server.url)).json(&json!({"messages": "after"})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    server.child.start_kill().unwrap();
    let _ = server.child.wait().await;
}

fn check_too_large(answer: Answer, what: &str) {
    match answer {
        Answer::Response { status, body } => {
            assert_eq!(status, 413, "{what}: {body}");
            assert_eq!(body["code"], "body_too_large", "{what}: {body}");
            assert!(body["error"].as_str().is_some_and(|error| error.contains("1048576")), "{what}: names the limit: {body}");
        }
        other => panic!("{what}: a 413 with a JSON body, got {other:?}"),
    }
}
