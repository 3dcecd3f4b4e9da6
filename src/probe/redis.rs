//! Redis probe: (AUTH, then) PING, expecting PONG. Spoken in RESP directly:
//! two commands do not justify a client library.

use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::resolve::Resolver;
use super::{finish, timed_out, ProbeReport};
use crate::config::ServiceConfig;

/// A RESP array of bulk strings.
fn command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub async fn probe(target: &ServiceConfig, resolver: &Resolver) -> ProbeReport {
    let started = Instant::now();
    match tokio::time::timeout(target.timeout, ping(target, resolver)).await {
        Ok(Ok(())) => finish(target, started.elapsed(), None),
        Ok(Err(reason)) => ProbeReport::down(started.elapsed(), reason),
        Err(_) => timed_out(target, started),
    }
}

async fn ping(target: &ServiceConfig, resolver: &Resolver) -> Result<(), String> {
    let host = target.url.host_str().unwrap_or_default();
    let port = target.url.port().unwrap_or(6379);
    let stream = resolver
        .connect(host, port)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    let mut stream = BufReader::new(stream);
    if let Some(password) = target.url.password() {
        let password = percent_decode(password);
        let user = percent_decode(target.url.username());
        let auth = if user.is_empty() {
            command(&["AUTH", &password])
        } else {
            command(&["AUTH", &user, &password])
        };
        let answer = ask(&mut stream, auth).await?;
        if !answer.starts_with("+OK") {
            return Err(format!("AUTH refused: {}", answer.trim_start_matches('-')));
        }
    }
    let answer = ask(&mut stream, command(&["PING"])).await?;
    if answer == "+PONG" {
        Ok(())
    } else if answer.is_empty() {
        Err("connection closed without an answer".into())
    } else {
        Err(format!(
            "PING answered {}",
            answer.trim_start_matches(['-', '+'])
        ))
    }
}

/// Sends one command and reads its one-line answer (at most 512 bytes: a
/// status line is short, and a stranger on the port must not make us read
/// forever).
async fn ask(stream: &mut BufReader<TcpStream>, cmd: Vec<u8>) -> Result<String, String> {
    stream
        .get_mut()
        .write_all(&cmd)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    let mut line = String::new();
    (&mut *stream)
        .take(512)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("read failed: {e}"))?;
    Ok(line.trim_end().to_string())
}

/// URL user info is percent-encoded (`p%40ss` for `p@ss`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_urls_are_decoded() {
        assert_eq!(super::percent_decode("p%40ss+w%2Fd"), "p@ss+w/d");
        assert_eq!(super::percent_decode("100%"), "100%");
    }

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(super::command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
    }
}
