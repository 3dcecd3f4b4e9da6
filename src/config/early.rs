//! Where beacon will listen, told from the config file without parsing all
//! of it: a file of 100,000 services takes seconds to parse and validate
//! on a busy machine, and `/livez` must answer within a second of the
//! start at any size (a liveness probe that kills a starting beacon kills
//! it in a loop). So `beacon serve` binds this address and answers
//! `/livez` while the whole file is parsed; the real server then takes the
//! socket over, or, should the full parse find another address, closes
//! it and binds that one.

use std::net::SocketAddr;

use super::EnvLookup;

/// `server.listen` as `BEACON_LISTEN` or the file's `[server]` table sets
/// it (the default when neither does), or `None` when that cannot be told
/// cheaply and surely: `server` set as a dotted key or an inline table,
/// a value interpolated from the environment, or a `[server]` table that
/// does not parse on its own. `None` only means the socket is bound after
/// the full parse, as it always was.
pub fn listen_address(text: &str, env: EnvLookup<'_>) -> Option<SocketAddr> {
    if let Some(value) = env("BEACON_LISTEN") {
        return value.trim().parse().ok();
    }
    let mut section: Option<String> = None;
    let mut server = String::new();
    let mut seen_server = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let header = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            seen_server |= header == "server";
            section = Some(header);
            continue;
        }
        match section.as_deref() {
            // Before any table: `server.listen = …` or `server = { … }`.
            None if trimmed.starts_with("server") => return None,
            Some("server") => {
                server.push_str(line);
                server.push('\n');
            }
            _ => {}
        }
    }
    if !seen_server {
        return super::validate::DEFAULT_LISTEN.parse().ok();
    }
    if server.contains("${") {
        return None;
    }
    let table: toml::Table = toml::from_str(&server).ok()?;
    match table.get("listen") {
        Some(toml::Value::String(listen)) => listen.parse().ok(),
        Some(_) => None,
        None => super::validate::DEFAULT_LISTEN.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::listen_address;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn at(text: &str) -> Option<String> {
        listen_address(text, &no_env).map(|a| a.to_string())
    }

    #[test]
    fn the_server_table_says_where_or_the_default_does() {
        let file = "[storage]\nurl = \"sqlite://x.db\"\n\n[server] # public\nlisten = \"0.0.0.0:9000\" # all\ntitle = \"S\"\n\n[server.limits]\nmax_connections = 10\n[[service]]\nname = \"A\"\nurl = \"http://a/\"\n";
        assert_eq!(at(file).as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(
            at("[server]\ntitle = \"S\"\n").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            at("[[service]]\nname = \"A\"\n").as_deref(),
            Some("127.0.0.1:8080")
        );
        // A `listen` in another table is not the server's.
        assert_eq!(
            at("[metrics]\nlisten = \"0.0.0.0:1\"\n").as_deref(),
            Some("127.0.0.1:8080")
        );
    }

    #[test]
    fn what_cannot_be_told_surely_is_left_to_the_full_parse() {
        assert_eq!(at("server.listen = \"0.0.0.0:9000\"\n"), None);
        assert_eq!(at("server = { listen = \"0.0.0.0:9000\" }\n"), None);
        assert_eq!(at("[server]\nlisten = \"${PORT}\"\n"), None);
        assert_eq!(at("[server]\nlisten = 9000\n"), None);
        assert_eq!(at("[server]\nlisten = \"nonsense\"\n"), None);
        assert_eq!(at("[server]\nlisten = \"0.0.0.0:9000\n"), None);
    }

    #[test]
    fn beacon_listen_overrides_the_file() {
        let env = |name: &str| (name == "BEACON_LISTEN").then(|| "127.0.0.1:7000".to_string());
        assert_eq!(
            listen_address("[server]\nlisten = \"0.0.0.0:9000\"\n", &env).map(|a| a.to_string()),
            Some("127.0.0.1:7000".into())
        );
    }
}
