//! One blocking HTTP/1.1 request at a time, for the harness's own checks (is a target up,
//! does it answer the benchmark's request, what does `/metrics` say). The load itself comes
//! from oha; this never sends more than a handful of requests.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("while connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout)).context("while setting a timeout")?;
    stream.set_write_timeout(Some(timeout)).context("while setting a timeout")?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).context("while sending")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).context("while reading the answer")?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP answer: {head:?}"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(Answer { status, body })
}

/// Joins the chunks of a chunked body (good enough for text answers read whole).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// Polls `GET path` until it answers `ok_status`, the process exits, or `timeout` passes.
pub fn wait_ready(
    addr: SocketAddr,
    path: &str,
    ok_status: u16,
    timeout: Duration,
    alive: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        alive()?;
        let last = match request(addr, "GET", path, &[], "", Duration::from_secs(2)) {
            Ok(answer) if answer.status == ok_status => return Ok(()),
            Ok(answer) => format!("status {}: {}", answer.status, answer.body.chars().take(200).collect::<String>()),
            Err(error) => format!("{error:#}"),
        };
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("{addr}{path} not ready after {timeout:?}: {last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A free loopback port (bound and released; the target binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("while looking for a free port")?;
    Ok(listener.local_addr().context("while reading the port")?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
