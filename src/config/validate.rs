//! From TOML text to a trusted [`Config`], collecting every problem.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::interpolate::interpolate;
use super::raw::{known_keys, RawBackup, RawConfig, RawNotify, RawService};
use super::*;
use crate::domain::condition::Condition;
use crate::domain::text::slugify;

/// One step of a path into the TOML document.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

pub(super) fn from_toml(
    text: &str,
    source: ConfigSource,
    env: EnvLookup<'_>,
) -> Result<Config, ConfigError> {
    let source_name = source.to_string();

    // Syntax and type errors first: parsing the text itself gives toml's
    // messages with line and column. Interpolation only changes the content
    // of strings, never a type, so this check stays valid afterwards.
    if let Err(e) = toml::from_str::<RawConfig>(text) {
        return Err(ConfigError::Syntax {
            source_name,
            message: e.to_string().trim_end().to_string(),
        });
    }
    let mut root: toml::Value = match toml::from_str::<toml::Table>(text) {
        Ok(table) => toml::Value::Table(table),
        Err(e) => {
            return Err(ConfigError::Syntax {
                source_name,
                message: e.to_string().trim_end().to_string(),
            })
        }
    };

    let mut problems = Vec::new();

    // ${VAR} secrets, reported with the place of the value that needs them.
    let mut unset = Vec::new();
    let used = std::cell::RefCell::new(Vec::new());
    let recording = |name: &str| {
        let value = env(name);
        if let Some(value) = &value {
            used.borrow_mut().push((name.to_string(), value.clone()));
        }
        value
    };
    substitute(&mut root, &mut Vec::new(), &recording, &mut unset);
    // A value from ${VAR} is never printed, by this process or in a message.
    let used = used.into_inner();
    crate::redact::remember(used.iter().map(|(_, value)| value.clone()));
    for (path, name) in unset {
        problems.push(format!(
            "{}: environment variable {name} is not set",
            describe(&root, &path)
        ));
    }

    // Overrides from the environment win over the file.
    let mut overridden = Vec::new();
    for (var, table, key) in [
        ("BEACON_LISTEN", "server", "listen"),
        ("BEACON_STORAGE_URL", "storage", "url"),
        ("BEACON_BACKUP_TARGET", "backup", "target"),
    ] {
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            if let Some(root) = root.as_table_mut() {
                let entry = root
                    .entry(table)
                    .or_insert_with(|| toml::Value::Table(Default::default()));
                if let Some(t) = entry.as_table_mut() {
                    t.insert(key.into(), toml::Value::String(value));
                    overridden.push(format!("{table}.{key}"));
                }
            }
        }
    }
    let from_env = |field: &str| -> &'static str {
        match field {
            "server.listen" if overridden.iter().any(|o| o == field) => " (from BEACON_LISTEN)",
            "storage.url" if overridden.iter().any(|o| o == field) => " (from BEACON_STORAGE_URL)",
            "backup.target" if overridden.iter().any(|o| o == field) => {
                " (from BEACON_BACKUP_TARGET)"
            }
            _ => "",
        }
    };

    let mut unknown = Vec::new();
    let raw: RawConfig =
        match serde_ignored::deserialize(root.clone(), |path| unknown.push(segments(&path))) {
            Ok(raw) => raw,
            Err(e) => {
                return Err(ConfigError::Syntax {
                    source_name,
                    message: hide_substituted(&e.to_string(), &used),
                })
            }
        };
    for path in unknown {
        problems.push(unknown_key_message(&root, &path));
    }

    // [server]
    let listen_text = raw.server.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(format!(
                "server: listen \"{listen_text}\"{}: not an address and port like 0.0.0.0:8080",
                from_env("server.listen")
            ));
            None
        }
    };
    let web_url = |field: &str, value: Option<&str>, problems: &mut Vec<String>| {
        value.and_then(|u| match url::Url::parse(u) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            Ok(url) => {
                problems.push(format!(
                    "server: {field} \"{}\" must start with http:// or https://",
                    crate::redact::url(&url)
                ));
                None
            }
            Err(e) => {
                problems.push(format!("server: {field} is not a valid URL ({e})"));
                None
            }
        })
    };
    let public_url = web_url(
        "public_url",
        raw.server.public_url.as_deref(),
        &mut problems,
    );
    let logo_url = web_url("logo_url", raw.server.logo_url.as_deref(), &mut problems);
    let home_url = web_url("home_url", raw.server.home_url.as_deref(), &mut problems);
    let support_url = web_url(
        "support_url",
        raw.server.support_url.as_deref(),
        &mut problems,
    );
    let announcement = raw
        .server
        .announcement
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let time_zone = match raw.server.time_zone.as_deref().map(str::trim) {
        None | Some("") => chrono_tz::UTC,
        Some(name) => name.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            problems.push(format!(
                "server: time_zone \"{name}\" is not an IANA time zone like \"Europe/Berlin\" or \"UTC\""
            ));
            chrono_tz::UTC
        }),
    };
    if announcement.as_ref().is_some_and(|a| a.len() > 2000) {
        problems.push("server: announcement is longer than 2000 bytes".to_string());
    }
    let title = raw
        .server
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "Status".to_string());

    // [storage]
    let storage_text = raw
        .storage
        .url
        .clone()
        .unwrap_or_else(|| "sqlite://data/beacon.db".to_string());
    if sqlite_url::is_memory(&storage_text) {
        problems.push(
            "storage: url: in-memory SQLite is not supported (each connection would see its own empty database); use a file, e.g. sqlite://data/beacon.db".to_string(),
        );
    }
    let storage_ok = storage_text.contains("${")
        || storage_text.starts_with("sqlite:")
        || storage_text.starts_with("postgres://")
        || storage_text.starts_with("postgresql://");
    if !storage_ok {
        problems.push(format!(
            "storage: url \"{}\"{}: must start with sqlite:// or postgres://",
            crate::redact::url_text(&storage_text),
            from_env("storage.url")
        ));
    }

    let raw_retention = match &raw.storage.raw_retention {
        None => StorageConfig::DEFAULT_RAW_RETENTION,
        Some(text) => match parse_duration("storage", "raw_retention", text) {
            Ok(d) if d >= Duration::from_secs(3600) => d,
            Ok(d) => {
                problems.push(format!(
                    "storage: raw_retention ({}) must be at least 1h",
                    humantime::format_duration(d)
                ));
                StorageConfig::DEFAULT_RAW_RETENTION
            }
            Err(p) => {
                problems.push(p);
                StorageConfig::DEFAULT_RAW_RETENTION
            }
        },
    };

    let mut limits = super::ServerLimits::default();
    if let Some(n) = raw.server.max_connections {
        match usize::try_from(n) {
            Ok(n) if (16..=1_000_000).contains(&n) => limits.max_connections = Some(n),
            _ => problems.push(format!(
                "server: max_connections ({n}) must be between 16 and 1000000"
            )),
        }
    }
    if let Some(text) = &raw.server.header_read_timeout {
        match parse_duration("server", "header_read_timeout", text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(300) => {
                limits.header_read_timeout = d
            }
            Ok(_) => problems.push(format!(
                "server: header_read_timeout ({text}) must be between 1s and 5m"
            )),
            Err(p) => problems.push(p),
        }
    }
    if let Some(text) = &raw.server.shutdown_timeout {
        match parse_duration("server", "shutdown_timeout", text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(600) => {
                limits.shutdown_timeout = d
            }
            Ok(_) => problems.push(format!(
                "server: shutdown_timeout ({text}) must be between 1s and 10m"
            )),
            Err(p) => problems.push(p),
        }
    }

    // [monitor]
    let mut monitor = MonitorConfig::default();
    if let Some(n) = raw.monitor.max_concurrency {
        match usize::try_from(n) {
            Ok(n) if n >= 1 => monitor.max_concurrency = n,
            _ => problems.push(format!("monitor: max_concurrency ({n}) must be at least 1")),
        }
    }
    if let Some(n) = raw.monitor.batch_size {
        match usize::try_from(n) {
            Ok(n) if (1..=50_000).contains(&n) => monitor.batch_size = n,
            _ => problems.push(format!(
                "monitor: batch_size ({n}) must be between 1 and 50000"
            )),
        }
    }
    if let Some(text) = &raw.monitor.flush_interval {
        match parse_duration("monitor", "flush_interval", text) {
            Ok(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(60) => {
                monitor.flush_interval = d
            }
            Ok(d) => problems.push(format!(
                "monitor: flush_interval ({}) must be between 10ms and 60s",
                humantime::format_duration(d)
            )),
            Err(p) => problems.push(p),
        }
    }

    if let Some(n) = raw.monitor.max_buffered_results {
        match usize::try_from(n) {
            Ok(n) if (1_000..=10_000_000).contains(&n) => monitor.max_buffered_results = n,
            _ => problems.push(format!(
                "monitor: max_buffered_results ({n}) must be between 1000 and 10000000"
            )),
        }
    }
    if let Some(text) = &raw.monitor.incident_cooldown {
        match parse_duration("monitor", "incident_cooldown", text) {
            Ok(d) => monitor.incident_cooldown = d,
            Err(p) => problems.push(p),
        }
    }

    // [admin]
    let mut admin = AdminConfig::default();
    for (i, token) in raw.admin.tokens.iter().flatten().enumerate() {
        let place = format!("admin: tokens[{}]", i + 1);
        admin
            .tokens
            .extend(bearer_token(&place, token, &mut problems));
    }

    // [metrics]
    let metrics = MetricsConfig {
        enabled: raw.metrics.enabled.unwrap_or(true),
        token: raw
            .metrics
            .token
            .as_deref()
            .and_then(|token| bearer_token("metrics: token", token, &mut problems)),
    };

    let backup = raw
        .backup
        .as_ref()
        .and_then(|b| validate_backup(b, env, from_env("backup.target"), &mut problems));

    // [[group]]
    let mut groups = Vec::new();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    for (i, g) in raw.groups.iter().enumerate() {
        let place = item_place("group", i, g.name.as_deref());
        match g.name.as_deref().map(str::trim) {
            None | Some("") => problems.push(format!("{place}: name is required")),
            Some(name) => {
                if let Some(first) = group_index.get(name) {
                    problems.push(format!(
                        "{place}: name \"{name}\" is already used by group[{}]",
                        first + 1
                    ));
                } else {
                    group_index.insert(name.to_string(), i);
                    groups.push(GroupConfig {
                        name: name.to_string(),
                        description: g.description.clone(),
                    });
                }
            }
        }
    }

    // [[service]]
    let mut services = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut slugs: HashMap<String, usize> = HashMap::new();
    for (i, s) in raw.services.iter().enumerate() {
        let place = item_place("service", i, s.name.as_deref());
        // Duplicates are checked on the raw names, so that a service with
        // other mistakes still counts as taking its name and slug.
        let name = s.name.as_deref().map(str::trim).unwrap_or("");
        let slug = s.slug.clone().unwrap_or_else(|| slugify(name));
        let mut duplicate = false;
        if !name.is_empty() {
            if let Some(first) = names.get(name) {
                problems.push(format!(
                    "{place}: name \"{name}\" is already used by service[{}]",
                    first + 1
                ));
                duplicate = true;
            } else {
                names.insert(name.to_string(), i);
            }
        }
        if !slug.is_empty() && !duplicate {
            if let Some(first) = slugs.get(&slug) {
                problems.push(format!(
                    "{place}: slug \"{slug}\" is already used by {}",
                    item_place("service", *first, raw.services[*first].name.as_deref())
                ));
            } else {
                slugs.insert(slug, i);
            }
        }
        if let Some(svc) = validate_service(s, &place, &groups, None, &mut problems) {
            services.push(svc);
        }
    }
    let watch_self = raw.server.watch_self.unwrap_or(false);
    if watch_self && slugs.contains_key("beacon") {
        problems.push(
            "server: watch_self adds a service with slug \"beacon\", which a configured service already uses"
                .to_string(),
        );
    }

    // [[notify]]
    let mut notify: Vec<NotifyChannel> = Vec::new();
    for (i, n) in raw.notify.iter().enumerate() {
        let place = item_place("notify", i, n.name.as_deref());
        if let Some(channel) = validate_notify(n, &place, &services, &groups, &mut problems) {
            if let Some(first) = notify.iter().position(|c| c.name == channel.name) {
                problems.push(format!(
                    "{place}: name \"{}\" is already used by notify[{}]; give each channel its own name",
                    channel.name,
                    first + 1
                ));
            } else {
                notify.push(channel);
            }
        }
    }
    if !raw.notify.is_empty() && public_url.is_none() {
        problems.push(
            "server: public_url is required with [[notify]]: alerts link to the status page"
                .to_string(),
        );
    }

    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            source_name,
            problems: problems
                .iter()
                .map(|p| hide_substituted(p, &used))
                .collect(),
        });
    }
    Ok(Config {
        server: ServerConfig {
            listen: listen.expect("no problems means listen parsed"),
            public_url,
            title,
            watch_self,
            logo_url,
            home_url,
            support_url,
            announcement,
            time_zone,
            limits,
        },
        storage: StorageConfig {
            url: DatabaseUrl::new(storage_text),
            raw_retention,
        },
        monitor,
        admin,
        metrics,
        backup,
        notify,
        groups,
        services,
        source,
    })
}

fn validate_notify(
    n: &RawNotify,
    place: &str,
    services: &[ServiceConfig],
    groups: &[GroupConfig],
    problems: &mut Vec<String>,
) -> Option<NotifyChannel> {
    let before = problems.len();
    let kind_text = n.kind.as_deref().map(str::trim).unwrap_or("");
    let web_url = |problems: &mut Vec<String>| -> Option<url::Url> {
        let Some(text) = n.url.as_deref().map(str::trim) else {
            problems.push(format!("{place}: url is required for kind \"{kind_text}\""));
            return None;
        };
        if text.contains("${") {
            return None; // the unset variable is reported already
        }
        match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            Ok(u) => {
                problems.push(format!(
                    "{place}: url \"{}\" is not an http(s) URL",
                    crate::redact::url(&u)
                ));
                None
            }
            Err(e) => {
                problems.push(format!("{place}: url is not a valid URL ({e})"));
                None
            }
        }
    };
    let only_for = |field: &str, set: bool, kinds: &str, problems: &mut Vec<String>| {
        if set {
            problems.push(format!("{place}: {field} applies to kind {kinds} only"));
        }
    };
    let kind = match kind_text {
        "webhook" => {
            let secret = n
                .secret
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.contains("${"));
            if secret.is_some_and(|s| s.len() < 16) {
                problems.push(format!(
                    "{place}: secret is shorter than 16 characters; use a long random secret (openssl rand -hex 32)"
                ));
            }
            let url = web_url(problems);
            url.map(|url| ChannelKind::Webhook {
                url,
                secret: secret.map(str::to_string),
            })
        }
        "slack" => {
            only_for("secret", n.secret.is_some(), "webhook", problems);
            web_url(problems).map(|url| ChannelKind::Slack { url })
        }
        "email" => {
            only_for("url", n.url.is_some(), "webhook and slack", problems);
            only_for("secret", n.secret.is_some(), "webhook", problems);
            email_channel(n, place, problems).map(ChannelKind::Email)
        }
        "" => {
            problems.push(format!(
                "{place}: kind is required (webhook, slack or email)"
            ));
            None
        }
        other => {
            problems.push(format!(
                "{place}: kind \"{other}\" is not one of webhook, slack, email"
            ));
            None
        }
    };
    if kind_text != "email" {
        for (field, set) in [
            ("smtp_host", n.smtp_host.is_some()),
            ("smtp_port", n.smtp_port.is_some()),
            ("smtp_tls", n.smtp_tls.is_some()),
            ("username", n.username.is_some()),
            ("password", n.password.is_some()),
            ("from", n.from.is_some()),
            ("to", n.to.is_some()),
        ] {
            only_for(field, set, "email", problems);
        }
    }

    let mut slugs = Vec::new();
    for wanted in n.services.iter().flatten() {
        let wanted = wanted.trim();
        match services
            .iter()
            .find(|s| s.slug == wanted || s.name == wanted)
        {
            Some(s) => slugs.push(s.slug.clone()),
            None => problems.push(format!(
                "{place}: services: no service is named or has the slug \"{wanted}\""
            )),
        }
    }
    let mut group_names = Vec::new();
    for wanted in n.groups.iter().flatten() {
        match groups.iter().find(|g| g.name == wanted.trim()) {
            Some(g) => group_names.push(g.name.clone()),
            None => problems.push(format!(
                "{place}: groups: no [[group]] is named \"{}\"",
                wanted.trim()
            )),
        }
    }
    let events = match &n.events {
        None => crate::domain::EventKind::ALL.to_vec(),
        Some(list) => {
            let mut events = Vec::new();
            for e in list {
                match crate::domain::EventKind::parse(e.trim()) {
                    Some(k) => events.push(k),
                    None => problems.push(format!(
                        "{place}: events: \"{}\" is not one of {}",
                        e.trim(),
                        crate::domain::EventKind::ALL
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
            events
        }
    };
    let min_state = match n.min_state.as_deref().map(str::trim) {
        None | Some("degraded") => crate::domain::State::Degraded,
        Some("down") => crate::domain::State::Down,
        Some(other) => {
            problems.push(format!(
                "{place}: min_state \"{other}\" is not one of degraded, down"
            ));
            crate::domain::State::Degraded
        }
    };
    let max_attempts = match n.max_attempts {
        None => NotifyChannel::DEFAULT_MAX_ATTEMPTS,
        Some(m) if (1..=100).contains(&m) => m as u32,
        Some(m) => {
            problems.push(format!(
                "{place}: max_attempts ({m}) must be between 1 and 100"
            ));
            1
        }
    };
    let retry_backoff = optional_duration(place, "retry_backoff", &n.retry_backoff, problems)
        .unwrap_or(NotifyChannel::DEFAULT_RETRY_BACKOFF);
    let timeout = optional_duration(place, "timeout", &n.timeout, problems)
        .unwrap_or(NotifyChannel::DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        problems.push(format!("{place}: timeout must be longer than 0s"));
    }
    if problems.len() > before {
        return None;
    }
    Some(NotifyChannel {
        name: n
            .name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(kind_text)
            .to_string(),
        kind: kind?,
        services: slugs,
        groups: group_names,
        events,
        min_state,
        send_on_resolved: n.send_on_resolved.unwrap_or(true),
        max_attempts,
        retry_backoff,
        timeout,
    })
}

fn email_channel(n: &RawNotify, place: &str, problems: &mut Vec<String>) -> Option<EmailChannel> {
    let before = problems.len();
    let host = n.smtp_host.as_deref().map(str::trim).unwrap_or("");
    if host.is_empty() {
        problems.push(format!("{place}: smtp_host is required for kind \"email\""));
    }
    let tls = match n.smtp_tls.as_deref().map(str::trim) {
        None | Some("starttls") => SmtpTls::Starttls,
        Some("tls") => SmtpTls::Tls,
        Some("none") => SmtpTls::None,
        Some(other) => {
            problems.push(format!(
                "{place}: smtp_tls \"{other}\" is not one of starttls, tls, none"
            ));
            SmtpTls::Starttls
        }
    };
    let port = match n.smtp_port {
        None => match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        },
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => {
            problems.push(format!("{place}: smtp_port ({p}) is not a port number"));
            0
        }
    };
    let credentials = match (n.username.as_deref(), n.password.as_deref()) {
        (None, None) => None,
        (Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
        (Some(_), None) => {
            problems.push(format!(
                "{place}: password is required with username (set it from the environment: password = \"${{SMTP_PASSWORD}}\")"
            ));
            None
        }
        (None, Some(_)) => {
            problems.push(format!("{place}: username is required with password"));
            None
        }
    };
    let mailbox = |field: &str, text: &str, problems: &mut Vec<String>| {
        if text.contains("${") {
            return;
        }
        if text.trim().parse::<lettre::message::Mailbox>().is_err() {
            problems.push(format!(
                "{place}: {field} \"{text}\" is not an email address (like ops@example.com or \"Ops <ops@example.com>\")"
            ));
        }
    };
    let from = n.from.as_deref().unwrap_or("");
    if from.trim().is_empty() {
        problems.push(format!("{place}: from is required for kind \"email\""));
    } else {
        mailbox("from", from, problems);
    }
    let to = n.to.clone().unwrap_or_default();
    if to.is_empty() {
        problems.push(format!(
            "{place}: to is required for kind \"email\" (a list of addresses)"
        ));
    }
    for (i, address) in to.iter().enumerate() {
        mailbox(&format!("to[{}]", i + 1), address, problems);
    }
    if problems.len() > before {
        return None;
    }
    Some(EmailChannel {
        host: host.to_string(),
        port,
        tls,
        credentials,
        from: from.trim().to_string(),
        to: to.iter().map(|t| t.trim().to_string()).collect(),
    })
}

/// A bearer token from the config: trimmed, at least 16 characters. `None`
/// (with the problem named at `place`) when too short, or when it still
/// holds an unset `${VAR}` (already reported).
fn bearer_token(place: &str, token: &str, problems: &mut Vec<String>) -> Option<String> {
    if token.contains("${") {
        return None;
    }
    if token.trim().len() < 16 {
        problems.push(format!(
            "{place} is shorter than 16 characters; use a long random secret (openssl rand -hex 32)"
        ));
        return None;
    }
    Some(token.trim().to_string())
}

/// `problem` with each value that came from `${VAR}` written as the
/// variable instead (longest value first), so that no message shows one.
fn hide_substituted(problem: &str, used: &[(String, String)]) -> String {
    let mut used: Vec<&(String, String)> = used
        .iter()
        .filter(|(_, value)| value.len() >= crate::redact::MIN_SECRET_LEN)
        .collect();
    used.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
    let mut out = problem.to_string();
    for (name, value) in used {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), &format!("${{{name}}}"));
        }
    }
    out
}

/// `backup.endpoint`: an http(s) URL of scheme, host and port only, as S3
/// endpoints are. Anything else (a user, a password, a path, a query) is
/// refused without being shown: S3 credentials come from the environment.
fn s3_endpoint(text: &str, problems: &mut Vec<String>) -> Option<String> {
    let example = "write it like http://127.0.0.1:9000 or https://s3.example.com";
    match url::Url::parse(text.trim()) {
        Err(e) => problems.push(format!(
            "backup: endpoint is not a valid URL ({e}); {example}"
        )),
        Ok(u) if !matches!(u.scheme(), "http" | "https") || u.host().is_none() => {
            problems.push(format!(
                "backup: endpoint \"{}\" must be an http:// or https:// URL",
                crate::redact::url(&u)
            ))
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => problems.push(
            "backup: endpoint must not hold a user name or password (S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                .to_string(),
        ),
        Ok(u) if u.path() != "/" || u.query().is_some() || u.fragment().is_some() => problems
            .push(format!(
                "backup: endpoint must be a scheme, host and port only, with no path or query; {example}"
            )),
        Ok(u) => return Some(crate::redact::url(&u)),
    }
    None
}

fn validate_backup(
    raw: &RawBackup,
    env: EnvLookup<'_>,
    target_from_env: &str,
    problems: &mut Vec<String>,
) -> Option<BackupConfig> {
    let before = problems.len();
    let target = match raw.target.as_deref() {
        None => {
            problems.push(
                "backup: target is required (s3://bucket/prefix or file:///path)".to_string(),
            );
            None
        }
        Some(t) if t.contains("${") => None, // an unset variable, already reported
        Some(t) => match BackupTargetUrl::parse(t) {
            Ok(target) => Some(target),
            Err(e) => {
                let shown = match t.trim().strip_prefix("file://") {
                    Some(_) => t.trim().to_string(),
                    None => crate::redact::url_text(t),
                };
                problems.push(format!("backup: target \"{shown}\"{target_from_env} {e}"));
                None
            }
        },
    };
    if let Some(s) = &raw.schedule {
        if let Err(e) = parse_schedule(s) {
            problems.push(format!("backup: schedule {e}"));
        }
    }
    let endpoint = raw
        .endpoint
        .as_deref()
        .filter(|e| !e.contains("${")) // an unset variable, already reported
        .and_then(|e| s3_endpoint(e, problems));
    if raw.endpoint.is_some() {
        // (A target from BEACON_BACKUP_TARGET may point a config made for
        // S3 at a folder, e.g. for a restore drill: the endpoint is unused.)
        if matches!(target, Some(BackupTargetUrl::File(_))) && target_from_env.is_empty() {
            problems.push("backup: endpoint is only for s3:// targets".to_string());
        }
    }
    let sdk_checksums = match raw.checksums.as_deref() {
        None | Some("when_supported") => true,
        Some("when_required") => false,
        Some(other) => {
            problems.push(format!(
                "backup: checksums \"{other}\" is not one of when_supported, when_required"
            ));
            true
        }
    };
    let part_size = match raw.part_size_mib {
        None => BackupConfig::DEFAULT_PART_SIZE,
        Some(n @ 5..=4096) => n as usize * 1024 * 1024,
        Some(n) => {
            problems.push(format!(
                "backup: part_size_mib ({n}) must be between 5 and 4096 (S3's limits)"
            ));
            BackupConfig::DEFAULT_PART_SIZE
        }
    };
    let mut keep = KeepPolicy::default();
    if let Some(k) = &raw.keep {
        let mut field = |name: &str, value: Option<i64>, slot: &mut u32| {
            if let Some(v) = value {
                match u32::try_from(v) {
                    Ok(v) => *slot = v,
                    Err(_) => problems.push(format!("backup: keep.{name} ({v}) must be 0 or more")),
                }
            }
        };
        field("last", k.last, &mut keep.last);
        field("hourly", k.hourly, &mut keep.hourly);
        field("daily", k.daily, &mut keep.daily);
        field("weekly", k.weekly, &mut keep.weekly);
        field("monthly", k.monthly, &mut keep.monthly);
        field("yearly", k.yearly, &mut keep.yearly);
    } else {
        keep = KeepPolicy::DEFAULT;
    }
    if keep.is_empty() {
        problems.push(
            "backup: keep keeps nothing; set at least one of last, hourly, daily, weekly, monthly, yearly (e.g. keep = { last = 4, daily = 7 })"
                .to_string(),
        );
    }
    if problems.len() > before {
        return None;
    }
    Some(BackupConfig {
        schedule: raw.schedule.as_ref().map(|s| s.trim().to_string()),
        target: target?,
        endpoint,
        region: raw
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".to_string()),
        path_style: raw.path_style.unwrap_or(true),
        sdk_checksums,
        part_size,
        temp_dir: raw.temp_dir.as_ref().map(PathBuf::from),
        keep,
        credentials: match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => {
                Some(S3Credentials {
                    access_key_id: key,
                    secret_access_key: secret,
                    session_token: env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
                })
            }
            _ => None,
        },
    })
}

/// The interval and timeout a dependency inherits from its service.
#[derive(Clone, Copy)]
struct Parent {
    interval: Duration,
    timeout: Duration,
}

fn validate_service(
    s: &RawService,
    place: &str,
    groups: &[GroupConfig],
    parent: Option<Parent>,
    problems: &mut Vec<String>,
) -> Option<ServiceConfig> {
    let before = problems.len();
    if parent.is_some() {
        let service_only = [
            ("slug", s.slug.is_some()),
            ("group", s.group.is_some()),
            ("description", s.description.is_some()),
            ("public", s.public.is_some()),
            ("interval", s.interval.is_some()),
            ("failure_threshold", s.failure_threshold.is_some()),
            ("success_threshold", s.success_threshold.is_some()),
            ("dependency", !s.dependencies.is_empty()),
        ];
        for (field, set) in service_only {
            if set {
                problems.push(format!(
                    "{place}: {field} applies to services, not to a dependency (it follows its service)"
                ));
            }
        }
    }
    let name = s.name.as_deref().map(str::trim).unwrap_or("");
    if name.is_empty() {
        problems.push(format!("{place}: name is required"));
    }
    let slug = match s.slug.as_deref() {
        Some(slug) => {
            let valid = !slug.is_empty()
                && slug
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                problems.push(format!(
                    "{place}: slug \"{slug}\" may hold only a-z, 0-9 and -"
                ));
            }
            slug.to_string()
        }
        None => {
            let slug = slugify(name);
            if slug.is_empty() && !name.is_empty() {
                problems.push(format!(
                    "{place}: name gives an empty slug; set slug = \"…\" (a-z, 0-9, -)"
                ));
            }
            slug
        }
    };
    if let Some(group) = &s.group {
        if !groups.iter().any(|g| &g.name == group) {
            let known: Vec<String> = groups.iter().map(|g| format!("\"{}\"", g.name)).collect();
            problems.push(format!(
                "{place}: group \"{group}\" is not defined by any [[group]]{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (defined: {})", known.join(", "))
                }
            ));
        }
    }
    let kind = match s.kind.as_deref() {
        None => None,
        Some(k) => match ProbeKind::parse(k) {
            Some(kind) => Some(kind),
            None => {
                problems.push(format!(
                    "{place}: kind \"{k}\" is not one of {}",
                    ProbeKind::NAMES.join(", ")
                ));
                None
            }
        },
    };
    let url = match s.url.as_deref() {
        // An unset ${VAR} is already reported; the text left is no URL to judge.
        Some(text) if text.contains("${") => {
            let reported = format!("{place}: url: environment variable");
            if !problems.iter().any(|p| p.starts_with(&reported)) {
                problems.push(format!("{place}: url is not a valid URL"));
            }
            None
        }
        None => {
            problems.push(format!("{place}: url is required"));
            None
        }
        Some(text) => match url::Url::parse(text) {
            Ok(url) => check_target_url(place, url, kind, problems),
            Err(e) => {
                problems.push(format!("{place}: url is not a valid URL ({e})"));
                None
            }
        },
    };
    // A dependency is probed with its service, at the service's interval.
    let interval = match parent {
        Some(p) => p.interval,
        None => optional_duration(place, "interval", &s.interval, problems)
            .unwrap_or(ServiceConfig::DEFAULT_INTERVAL),
    };
    if interval < Duration::from_secs(1) {
        problems.push(format!(
            "{place}: interval ({}) must be at least 1s",
            humantime::format_duration(interval)
        ));
    }
    let timeout = optional_duration(place, "timeout", &s.timeout, problems)
        .or(parent.map(|p| p.timeout))
        .unwrap_or(
            ServiceConfig::DEFAULT_TIMEOUT.min(interval.saturating_sub(Duration::from_millis(1))),
        );
    if timeout.is_zero() {
        problems.push(format!("{place}: timeout must be more than 0s"));
    } else if timeout >= interval && interval >= Duration::from_secs(1) {
        problems.push(format!(
            "{place}: timeout ({}) must be shorter than interval ({})",
            humantime::format_duration(timeout),
            humantime::format_duration(interval)
        ));
    }
    let degraded_latency =
        optional_duration(place, "degraded_latency", &s.degraded_latency, problems);
    if let Some(d) = degraded_latency {
        if d >= timeout {
            problems.push(format!(
                "{place}: degraded_latency ({}) must be shorter than timeout ({})",
                humantime::format_duration(d),
                humantime::format_duration(timeout)
            ));
        }
    }
    let threshold =
        |field: &str, value: Option<i64>, default: u32, problems: &mut Vec<String>| match value {
            None => default,
            Some(n) if (1..=100).contains(&n) => n as u32,
            Some(n) => {
                problems.push(format!("{place}: {field} ({n}) must be between 1 and 100"));
                default
            }
        };
    let failure_threshold = threshold(
        "failure_threshold",
        s.failure_threshold,
        ServiceConfig::DEFAULT_FAILURE_THRESHOLD,
        problems,
    );
    let success_threshold = threshold(
        "success_threshold",
        s.success_threshold,
        ServiceConfig::DEFAULT_SUCCESS_THRESHOLD,
        problems,
    );
    let mut expected_status = Vec::new();
    for code in s.expected_status.iter().flatten() {
        match u16::try_from(*code) {
            Ok(c) if (100..=599).contains(&c) => expected_status.push(c),
            _ => problems.push(format!(
                "{place}: expected_status {code} is not an HTTP status (100-599)"
            )),
        }
    }

    let format = match s.format.as_deref() {
        None => crate::domain::Format::Auto,
        Some(name) => crate::domain::Format::parse(name).unwrap_or_else(|| {
            problems.push(format!(
                "{place}: format \"{name}\" is not one of {}",
                crate::domain::Format::NAMES.join(", ")
            ));
            crate::domain::Format::Auto
        }),
    };

    let mut parse_conditions = |field: &str, list: &Option<Vec<String>>| -> Vec<Condition> {
        let mut parsed = Vec::new();
        for (i, text) in list.iter().flatten().enumerate() {
            match Condition::parse(text) {
                Ok(_) if text.contains("[DOMAIN_EXPIRATION]") => {
                    problems.push(format!(
                        "{place}: {field}[{}]: [DOMAIN_EXPIRATION] is not supported (beacon makes no WHOIS lookups)",
                        i + 1
                    ));
                }
                Ok(c) => parsed.push(c),
                Err(e) => problems.push(format!("{place}: {field}[{}]: {e}", i + 1)),
            }
        }
        parsed
    };
    let conditions = parse_conditions("conditions", &s.conditions);
    let degraded_conditions = parse_conditions("degraded_conditions", &s.degraded_conditions);
    if !conditions.is_empty() && !expected_status.is_empty() {
        problems.push(format!(
            "{place}: set either expected_status or conditions (write the status as a condition: \"[STATUS] == 200\")"
        ));
    }

    let http = http_options(place, s, problems);
    let mut dns_expect = Vec::new();
    for text in s.dns_expect.iter().flatten() {
        match text.parse::<std::net::IpAddr>() {
            Ok(ip) => dns_expect.push(ip),
            Err(_) => problems.push(format!(
                "{place}: dns_expect \"{text}\" is not an IP address"
            )),
        }
    }
    let day_bound =
        |field: &str, value: Option<i64>, default: i64, problems: &mut Vec<String>| match value {
            None => default,
            Some(d) if (0..=3650).contains(&d) => d,
            Some(d) => {
                problems.push(format!("{place}: {field} ({d}) must be between 0 and 3650"));
                default
            }
        };
    let tls_warn_days = day_bound(
        "tls_warn_days",
        s.tls_warn_days,
        ServiceConfig::DEFAULT_TLS_WARN_DAYS,
        problems,
    );
    let tls_fail_days = day_bound(
        "tls_fail_days",
        s.tls_fail_days,
        ServiceConfig::DEFAULT_TLS_FAIL_DAYS,
        problems,
    );
    if tls_fail_days > tls_warn_days {
        problems.push(format!(
            "{place}: tls_fail_days ({tls_fail_days}) must not be more than tls_warn_days ({tls_warn_days})"
        ));
    }
    let mut dependencies = Vec::new();
    let mut dependency_names = HashMap::new();
    for (i, d) in s.dependencies.iter().enumerate() {
        let dep_place = format!(
            "{place}: {}",
            item_place("dependency", i, d.name.as_deref())
        );
        if let Some(name) = d.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            if let Some(first) = dependency_names.insert(name.to_string(), i) {
                problems.push(format!(
                    "{dep_place}: name \"{name}\" is already used by dependency[{}]",
                    first + 1
                ));
            }
        }
        let parent = Parent { interval, timeout };
        if let Some(dep) = validate_service(d, &dep_place, groups, Some(parent), problems) {
            dependencies.push(dep);
        }
    }

    if problems.len() > before {
        return None;
    }
    let url = url?;
    Some(ServiceConfig {
        name: name.to_string(),
        slug,
        group: s.group.clone(),
        description: s.description.clone(),
        public: s.public.unwrap_or(true),
        kind: kind
            .or_else(|| ProbeKind::parse(url.scheme()))
            .unwrap_or(ProbeKind::Http),
        url,
        interval,
        timeout,
        failure_threshold,
        success_threshold,
        degraded_latency,
        expected_status,
        format,
        conditions,
        degraded_conditions,
        http,
        dns_expect,
        tls_warn_days,
        tls_fail_days,
        dependencies,
    })
}

/// Checks a URL against the probe kind (given, or named by its scheme).
fn check_target_url(
    place: &str,
    url: url::Url,
    kind: Option<ProbeKind>,
    problems: &mut Vec<String>,
) -> Option<url::Url> {
    let shown = crate::redact::url(&url);
    let Some(scheme_kind) = ProbeKind::parse(url.scheme()) else {
        problems.push(format!(
            "{place}: url \"{shown}\" must start with http://, https://, tcp://, tls://, dns://, postgres:// or redis://"
        ));
        return None;
    };
    if let Some(kind) = kind {
        if kind != scheme_kind {
            problems.push(format!(
                "{place}: kind \"{}\" does not match the url's scheme \"{}\"",
                kind.as_str(),
                url.scheme()
            ));
            return None;
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        problems.push(format!("{place}: url \"{shown}\" has no host"));
        return None;
    }
    if scheme_kind == ProbeKind::Tcp && url.port().is_none() {
        problems.push(format!(
            "{place}: url \"{shown}\" needs a port (tcp://host:port)"
        ));
        return None;
    }
    Some(url)
}

fn http_options(place: &str, s: &RawService, problems: &mut Vec<String>) -> HttpOptions {
    let mut http = HttpOptions::default();
    if let Some(method) = &s.method {
        match reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => http.method = m,
            Err(_) => problems.push(format!(
                "{place}: method \"{method}\" is not an HTTP method"
            )),
        }
    }
    for (name, value) in s.headers.iter().flatten() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!(
                "{place}: headers: \"{name}\" is not a valid header name"
            ));
        } else if reqwest::header::HeaderValue::from_str(value).is_err() {
            // The value may be a secret: name the header, not the value.
            problems.push(format!(
                "{place}: headers: the value of \"{name}\" is not a valid header value"
            ));
        } else {
            http.headers.push((name.clone(), value.clone()));
        }
    }
    http.body = s.body.clone();
    http.follow_redirects = s.follow_redirects.unwrap_or(true);
    http.tls_verify = s.tls_verify.unwrap_or(true);
    http.keep_alive = s.keep_alive.unwrap_or(HttpOptions::DEFAULT_KEEP_ALIVE);
    http
}

fn parse_duration(place: &str, field: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!("{place}: {field} \"{text}\" is not a duration (write it like \"500ms\", \"30s\", \"5m\" or \"1h\")")
    })
}

fn optional_duration(
    place: &str,
    field: &str,
    value: &Option<String>,
    problems: &mut Vec<String>,
) -> Option<Duration> {
    let text = value.as_deref()?;
    match parse_duration(place, field, text) {
        Ok(d) => Some(d),
        Err(p) => {
            problems.push(p);
            None
        }
    }
}

/// `service[2] "Checkout"` (1-based, as a person counts), or `service[2]`.
fn item_place(table: &str, index: usize, name: Option<&str>) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("{table}[{}] \"{name}\"", index + 1),
        None => format!("{table}[{}]", index + 1),
    }
}

/// Walks every string in the document, substituting `${VAR}`.
fn substitute(
    value: &mut toml::Value,
    path: &mut Vec<Seg>,
    env: EnvLookup<'_>,
    unset: &mut Vec<(Vec<Seg>, String)>,
) {
    match value {
        toml::Value::String(s) => match interpolate(s, env) {
            Ok(new) => *s = new,
            Err(missing) => {
                for name in missing {
                    unset.push((path.clone(), name));
                }
            }
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                substitute(item, path, env, unset);
                path.pop();
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                path.push(Seg::Key(key.clone()));
                substitute(item, path, env, unset);
                path.pop();
            }
        }
        _ => {}
    }
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(Seg::Index(*index));
            v
        }
        Path::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(Seg::Key(key.clone()));
            v
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    }
}

/// `service[2] "Checkout": url` for the path `service.1.url`.
fn describe(root: &toml::Value, path: &[Seg]) -> String {
    let (place, rest) = split_place(root, path);
    // `tokens[2]`, `headers.X-Key`: keys joined by dots, indices appended.
    let mut field = String::new();
    for seg in rest {
        match seg {
            Seg::Key(k) if field.is_empty() => field.push_str(k),
            Seg::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Seg::Index(i) => field.push_str(&format!("[{}]", i + 1)),
        }
    }
    match (place.is_empty(), field.is_empty()) {
        (true, _) => field,
        (false, true) => place,
        (false, false) => format!("{place}: {field}"),
    }
}

/// Splits a path into its top-level item (`server`, `service[2] "Name"`) and
/// the field path inside it.
fn split_place<'p>(root: &toml::Value, path: &'p [Seg]) -> (String, &'p [Seg]) {
    match path {
        [Seg::Key(table), Seg::Index(i), rest @ ..] => {
            let name = root
                .get(table)
                .and_then(|t| t.get(*i))
                .and_then(|item| item.get("name"))
                .and_then(|n| n.as_str());
            (item_place(table, *i, name), rest)
        }
        [Seg::Key(table), rest @ ..] if !rest.is_empty() => (table.clone(), rest),
        _ => (String::new(), path),
    }
}

fn unknown_key_message(root: &toml::Value, path: &[Seg]) -> String {
    let Some((Seg::Key(key), parent)) = path.split_last() else {
        return format!("unknown entry at {}", describe(root, path));
    };
    let table = match parent.first() {
        Some(Seg::Key(t)) => t.as_str(),
        _ => "",
    };
    // A nested table ("backup.keep") has keys of its own.
    let nested = match parent {
        [Seg::Key(a), Seg::Key(b)] => format!("{a}.{b}"),
        _ => String::new(),
    };
    let keys = match known_keys(&nested) {
        keys if !nested.is_empty() && !keys.is_empty() => keys,
        _ => known_keys(table),
    };
    let hint = keys
        .iter()
        .filter(|k| levenshtein(k, key) <= 2)
        .min_by_key(|k| levenshtein(k, key))
        .map(|k| format!(" (did you mean \"{k}\"?)"))
        .unwrap_or_default();
    let where_ = if parent.is_empty() {
        "top level".to_string()
    } else {
        describe(root, parent)
    };
    format!("{where_}: unknown key \"{key}\"{hint}")
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn problems(text: &str) -> Vec<String> {
        match from_toml(text, ConfigSource::Embedded, &no_env) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems(),
        }
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let config = from_toml(EMBEDDED_DEFAULT, ConfigSource::Embedded, &no_env)
            .expect("embedded default must validate");
        assert!(config.server.watch_self);
        assert_eq!(config.storage.url.expose(), "sqlite://data/beacon.db");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn short_bearer_tokens_are_refused_where_they_stand() {
        let found = problems(
            r#"
            [admin]
            tokens = ["0123456789abcdef", "short"]
            [metrics]
            token = " tiny "
            "#,
        );
        assert_eq!(
            found,
            [
                "admin: tokens[2] is shorter than 16 characters; use a long random secret (openssl rand -hex 32)",
                "metrics: token is shorter than 16 characters; use a long random secret (openssl rand -hex 32)",
            ]
        );
        let config = from_toml(
            "[metrics]\nenabled = false\ntoken = \" 0123456789abcdef \"\n",
            ConfigSource::Embedded,
            &|_| None,
        )
        .expect("valid");
        assert!(!config.metrics.enabled);
        assert_eq!(config.metrics.token.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn the_example_config_is_valid() {
        let env = |name: &str| match name {
            "CHECKOUT_TOKEN" => Some("t0ken".to_string()),
            "BEACON_ADMIN_TOKEN" => Some("0123456789abcdef0123".to_string()),
            "ORDERS_DB_URL" => Some("postgres://orders:pw@db.example.com/orders".to_string()),
            "ALERT_WEBHOOK_URL" => Some("https://hooks.example.com/beacon".to_string()),
            "ALERT_WEBHOOK_SECRET" => Some("0123456789abcdef0123456789abcdef".to_string()),
            "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T0/B0/x".to_string()),
            "SMTP_USERNAME" => Some("beacon".to_string()),
            "SMTP_PASSWORD" => Some("s3cret".to_string()),
            _ => None,
        };
        let config = from_toml(
            include_str!("../../examples/beacon.toml"),
            ConfigSource::Embedded,
            &env,
        )
        .expect("examples/beacon.toml must validate");
        assert_eq!(config.services[0].dependencies.len(), 5);
        assert_eq!(config.services.len(), 3);
        assert_eq!(config.services[0].expected_status, [200, 204]);
        let backup = config.backup.expect("[backup]");
        assert_eq!(backup.keep.monthly, 12);
        assert_eq!(backup.part_size, 16 * 1024 * 1024);
        assert_eq!(
            config.services[0].degraded_latency,
            Some(Duration::from_millis(800))
        );
        let names: Vec<&str> = config.notify.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ops-webhook", "shop-chat", "oncall-mail"]);
        assert_eq!(config.notify[1].groups, ["Shop"]);
        assert_eq!(config.notify[1].min_state, crate::domain::State::Down);
    }

    #[test]
    fn notify_channels_are_validated_with_their_place() {
        let found = problems(
            r#"
            [server]
            public_url = "https://status.example.com"
            [[group]]
            name = "Shop"
            [[service]]
            name = "API"
            url = "http://api.internal/health"
            [[notify]]
            kind = "pager"
            [[notify]]
            name = "hook"
            kind = "webhook"
            url = "ftp://hooks.example.com/x"
            secret = "short"
            services = ["Checkout"]
            groups = ["Shopp"]
            events = ["service_down", "service_exploded"]
            min_state = "up"
            max_attempts = 0
            retry_backoff = "soon"
            [[notify]]
            name = "mail"
            kind = "email"
            smtp_tls = "ssl"
            username = "beacon"
            from = "not an address"
            [[notify]]
            name = "hook"
            kind = "slack"
            url = "https://hooks.slack.com/services/x"
            smtp_host = "smtp.example.com"
            "#,
        );
        let expected = [
            "notify[1]: kind \"pager\" is not one of webhook, slack, email",
            "notify[2] \"hook\": secret is shorter than 16 characters; use a long random secret (openssl rand -hex 32)",
            "notify[2] \"hook\": url \"ftp://hooks.example.com\" is not an http(s) URL",
            "notify[2] \"hook\": services: no service is named or has the slug \"Checkout\"",
            "notify[2] \"hook\": groups: no [[group]] is named \"Shopp\"",
            "notify[2] \"hook\": events: \"service_exploded\" is not one of service_down, service_degraded, service_recovered, incident_opened, incident_updated, incident_resolved, backup_failed, backup_verification_failed, certificate_expiring",
            "notify[2] \"hook\": min_state \"up\" is not one of degraded, down",
            "notify[2] \"hook\": max_attempts (0) must be between 1 and 100",
            "notify[2] \"hook\": retry_backoff \"soon\" is not a duration (write it like \"500ms\", \"30s\", \"5m\" or \"1h\")",
            "notify[3] \"mail\": smtp_host is required for kind \"email\"",
            "notify[3] \"mail\": smtp_tls \"ssl\" is not one of starttls, tls, none",
            "notify[3] \"mail\": password is required with username (set it from the environment: password = \"${SMTP_PASSWORD}\")",
            "notify[3] \"mail\": from \"not an address\" is not an email address (like ops@example.com or \"Ops <ops@example.com>\")",
            "notify[3] \"mail\": to is required for kind \"email\" (a list of addresses)",
            "notify[4] \"hook\": smtp_host applies to kind email only",
        ];
        for e in expected {
            assert!(
                found.iter().any(|f| f == e),
                "missing: {e}\nfound: {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");

        // Without a public URL, alerts could not link to the page.
        let found = problems(
            "[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\n",
        );
        assert_eq!(
            found,
            ["server: public_url is required with [[notify]]: alerts link to the status page"]
        );
        // Two channels of one name are refused, naming the first.
        let found = problems(
            "[server]\npublic_url = \"https://s.example.com\"\n             [[notify]]\nkind = \"slack\"\nurl = \"https://a.example.com/x\"\n             [[notify]]\nkind = \"slack\"\nurl = \"https://b.example.com/x\"\n",
        );
        assert_eq!(
            found,
            ["notify[2]: name \"slack\" is already used by notify[1]; give each channel its own name"]
        );
    }

    #[test]
    fn every_mistake_is_reported_at_once_with_its_place() {
        let found = problems(
            r#"
            [server]
            listn = "0.0.0.0:1"

            [[group]]
            name = "Shop"

            [[service]]
            name = "Checkout"
            url = "http://checkout/health"
            interval = "5s"
            timeout = "10s"
            timout = "1s"

            [[service]]
            name = "Checkout"
            url = "http://other/health"

            [[service]]
            name = "Orders"
            group = "Shopp"
            url = "not a url"
            interval = "500ms"

            [[service]]
            name = "Check-out"
            slug = "checkout"
            url = "ftp://x/"
            "#,
        );
        let expected = [
            "server: unknown key \"listn\" (did you mean \"listen\"?)",
            "service[1] \"Checkout\": unknown key \"timout\" (did you mean \"timeout\"?)",
            "service[1] \"Checkout\": timeout (10s) must be shorter than interval (5s)",
            "service[2] \"Checkout\": name \"Checkout\" is already used by service[1]",
            "service[3] \"Orders\": group \"Shopp\" is not defined by any [[group]] (defined: \"Shop\")",
            "service[3] \"Orders\": url is not a valid URL (relative URL without a base)",
            "service[3] \"Orders\": interval (500ms) must be at least 1s",
            "service[4] \"Check-out\": slug \"checkout\" is already used by service[1] \"Checkout\"",
            "service[4] \"Check-out\": url \"ftp://x\" must start with http://, https://, tcp://, tls://, dns://, postgres:// or redis://",
        ];
        for e in expected {
            assert!(found.iter().any(|p| p == e), "missing {e:?} in {found:#?}");
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn conditions_are_checked_at_load_with_their_place() {
        let found = problems(
            r#"
            [[service]]
            name = "A"
            url = "http://a/"
            conditions = ["[STATUS] == 200", "[STATUS]==200"]
            degraded_conditions = ["[DOMAIN_EXPIRATION] > 720h"]

            [[service]]
            name = "B"
            url = "http://b/"
            expected_status = [200]
            conditions = ["[STATUS] == 200"]
            "#,
        );
        assert_eq!(
            found,
            [
                "service[1] \"A\": conditions[2]: condition \"[STATUS]==200\" has no operator: write it like \"[STATUS] == 200\", with one space on each side of ==, !=, <, <=, > or >=",
                "service[1] \"A\": degraded_conditions[1]: [DOMAIN_EXPIRATION] is not supported (beacon makes no WHOIS lookups)",
                "service[2] \"B\": set either expected_status or conditions (write the status as a condition: \"[STATUS] == 200\")",
            ]
        );
    }

    #[test]
    fn probe_kinds_and_dependencies_are_validated_in_place() {
        let found = problems(
            r#"
            [[service]]
            name = "Orders"
            url = "https://orders.example/health"
            interval = "30s"
            timeout = "5s"
            method = "FETCH IT"
            headers = { "Bad Header" = "x", Authorization = "Bearer 1" }
            tls_warn_days = 2
            tls_fail_days = 5

              [[service.dependency]]
              name = "orders-db"
              url = "postgres://orders@db/orders"

              [[service.dependency]]
              name = "cache"
              url = "tcp://cache.internal"
              interval = "5s"

              [[service.dependency]]
              name = "orders-db"
              kind = "redis"
              url = "dns://db.internal"
              dns_expect = ["10.0.0.300"]
            "#,
        );
        assert_eq!(
            found,
            [
                "service[1] \"Orders\": method \"FETCH IT\" is not an HTTP method",
                "service[1] \"Orders\": headers: \"Bad Header\" is not a valid header name",
                "service[1] \"Orders\": tls_fail_days (5) must not be more than tls_warn_days (2)",
                "service[1] \"Orders\": dependency[2] \"cache\": interval applies to services, not to a dependency (it follows its service)",
                "service[1] \"Orders\": dependency[2] \"cache\": url \"tcp://cache.internal\" needs a port (tcp://host:port)",
                "service[1] \"Orders\": dependency[3] \"orders-db\": name \"orders-db\" is already used by dependency[1]",
                "service[1] \"Orders\": dependency[3] \"orders-db\": kind \"redis\" does not match the url's scheme \"dns\"",
                "service[1] \"Orders\": dependency[3] \"orders-db\": dns_expect \"10.0.0.300\" is not an IP address",
            ]
        );
    }

    #[test]
    fn kinds_come_from_the_url_scheme_and_dependencies_inherit_timing() {
        let config = from_toml(
            r#"
            [[service]]
            name = "Orders"
            url = "https://orders.example/health"
            interval = "30s"
            timeout = "5s"
              [[service.dependency]]
              name = "db"
              url = "postgres://orders@db/orders"
              [[service.dependency]]
              name = "cache"
              url = "redis://cache:6379"
              timeout = "1s"
              [[service.dependency]]
              name = "name"
              url = "dns://orders.example"
              dns_expect = ["127.0.0.1"]
              [[service.dependency]]
              name = "port"
              url = "tcp://orders.example:443"
              [[service.dependency]]
              name = "cert"
              url = "tls://orders.example:443"
            "#,
            ConfigSource::Embedded,
            &no_env,
        )
        .expect("valid");
        let s = &config.services[0];
        assert_eq!(s.kind, ProbeKind::Http);
        let kinds: Vec<ProbeKind> = s.dependencies.iter().map(|d| d.kind).collect();
        use ProbeKind::*;
        assert_eq!(kinds, [Postgres, Redis, Dns, Tcp, Tls]);
        assert_eq!(s.dependencies[0].timeout, Duration::from_secs(5));
        assert_eq!(s.dependencies[1].timeout, Duration::from_secs(1));
        assert_eq!(s.dependencies[0].interval, Duration::from_secs(30));
    }

    #[test]
    fn backup_settings_are_validated_with_their_field() {
        let found = problems(
            r#"
[backup]
target = "ftp://host/x"
schedule = "every day"
endpoint = "127.0.0.1:9000"
checksums = "sometimes"
part_size_mib = 1
keep = { last = 0, daly = 3 }
"#,
        );
        assert_eq!(
            found,
            [
                "backup: keep: unknown key \"daly\" (did you mean \"daily\"?)",
                "backup: target \"ftp://host\" must start with s3:// or file://",
                "backup: schedule \"every day\" is not a cron schedule with a seconds field, like \"0 0 */6 * * *\" (Invalid pattern: Pattern must have 6 or 7 fields when seconds are required and years are optional.)",
                "backup: endpoint is not a valid URL (relative URL without a base); write it like http://127.0.0.1:9000 or https://s3.example.com",
                "backup: checksums \"sometimes\" is not one of when_supported, when_required",
                "backup: part_size_mib (1) must be between 5 and 4096 (S3's limits)",
                "backup: keep keeps nothing; set at least one of last, hourly, daily, weekly, monthly, yearly (e.g. keep = { last = 4, daily = 7 })",
            ]
        );
        let found = problems("[backup]\nschedule = \"0 0 * * * *\"\n");
        assert_eq!(
            found,
            ["backup: target is required (s3://bucket/prefix or file:///path)"]
        );
        let env = |name: &str| match name {
            "BEACON_BACKUP_TARGET" => Some("s3://Bad_Bucket".to_string()),
            _ => None,
        };
        let e = from_toml("", ConfigSource::Embedded, &env).expect_err("bad bucket");
        assert_eq!(
            e.problems(),
            ["backup: target \"s3://Bad_Bucket\" (from BEACON_BACKUP_TARGET) \"Bad_Bucket\" is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"]
        );
        let env = |name: &str| match name {
            "BEACON_BACKUP_TARGET" => Some("s3://beacon-backups/prod".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("very-secret-key".to_string()),
            _ => None,
        };
        let config = from_toml("", ConfigSource::Embedded, &env).expect("valid");
        let backup = config.backup.expect("a [backup] from the environment");
        assert_eq!(backup.keep, KeepPolicy::DEFAULT);
        assert_eq!(
            backup.target,
            BackupTargetUrl::S3 {
                bucket: "beacon-backups".into(),
                prefix: "prod".into()
            }
        );
        assert_eq!(backup.target.to_string(), "s3://beacon-backups");
        assert!(
            !format!("{backup:?}").contains("very-secret-key"),
            "the secret is never printed"
        );
    }

    #[test]
    fn in_memory_sqlite_and_literal_placeholders_are_refused() {
        let found = problems(
            "[storage]\nurl = \"sqlite::memory:\"\n[[service]]\nname = \"A\"\nurl = \"http://a/$${X}\"\n",
        );
        assert_eq!(
            found,
            [
                "storage: url: in-memory SQLite is not supported (each connection would see its own empty database); use a file, e.g. sqlite://data/beacon.db",
                "service[1] \"A\": url is not a valid URL",
            ]
        );
    }

    #[test]
    fn duplicate_slugs_name_both_services() {
        let found = problems(
            r#"
            [[service]]
            name = "Check out"
            url = "http://a/"
            [[service]]
            name = "check-out"
            url = "http://b/"
            "#,
        );
        assert_eq!(
            found,
            ["service[2] \"check-out\": slug \"check-out\" is already used by service[1] \"Check out\""]
        );
    }

    #[test]
    fn unset_variables_are_reported_where_they_are_used() {
        let found = problems(
            r#"
            [storage]
            url = "postgres://beacon:${DB_PASSWORD}@db/beacon"
            [[service]]
            name = "Orders"
            url = "http://${ORDERS_HOST}/health"
            "#,
        );
        assert_eq!(
            found,
            [
                "storage: url: environment variable DB_PASSWORD is not set",
                "service[1] \"Orders\": url: environment variable ORDERS_HOST is not set",
            ]
        );
    }

    #[test]
    fn environment_overrides_win_and_are_named_in_errors() {
        let env = |name: &str| match name {
            "BEACON_LISTEN" => Some("nonsense".to_string()),
            "BEACON_STORAGE_URL" => Some("postgres://u:pw@h/db".to_string()),
            _ => None,
        };
        let err = from_toml("", ConfigSource::Embedded, &env).expect_err("listen is invalid");
        assert_eq!(
            err.problems(),
            ["server: listen \"nonsense\" (from BEACON_LISTEN): not an address and port like 0.0.0.0:8080"]
        );
        let env = |name: &str| match name {
            "BEACON_STORAGE_URL" => Some("postgres://u:pw@h/db".to_string()),
            _ => None,
        };
        let config = from_toml("", ConfigSource::Embedded, &env).expect("valid");
        assert_eq!(config.storage.url.expose(), "postgres://u:pw@h/db");
        assert_eq!(
            format!("{:?}", config.storage.url),
            "DatabaseUrl(postgres://h)"
        );
    }

    #[test]
    fn type_errors_point_at_the_line() {
        let err = from_toml(
            "[[service]]\nname = \"A\"\nurl = \"http://a/\"\ninterval = 30\n",
            ConfigSource::Embedded,
            &no_env,
        )
        .expect_err("interval must be a string");
        let msg = err.to_string();
        assert!(msg.contains("line 4"), "{msg}");
        assert!(msg.contains("interval") || msg.contains("string"), "{msg}");
    }

    #[test]
    fn defaults_apply_when_fields_are_left_out() {
        let config = from_toml(
            "[[service]]\nname = \"A\"\nurl = \"https://a.example/health\"\n",
            ConfigSource::Embedded,
            &no_env,
        )
        .expect("valid");
        let s = &config.services[0];
        assert_eq!(s.slug, "a");
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!((s.failure_threshold, s.success_threshold), (3, 1));
        assert!(s.public);
    }

    #[test]
    fn secrets_are_redacted_in_messages() {
        let found = problems("[storage]\nurl = \"mysql://root:hunter2@db/x\"\n");
        assert_eq!(
            found,
            ["storage: url \"mysql://db\": must start with sqlite:// or postgres://"]
        );
    }

    #[test]
    fn places_in_lists_and_tables_read_as_written() {
        let found = problems(
            r#"
            [admin]
            tokens = ["0123456789abcdef", "${UNSET_TOKEN}"]
            [[service]]
            name = "A"
            url = "http://a/"
            headers = { X-Key = "${UNSET_KEY}" }
            conditions = ["[STATUS] == ${UNSET_STATUS}"]
            "#,
        );
        assert_eq!(
            found,
            [
                "admin: tokens[2]: environment variable UNSET_TOKEN is not set",
                "service[1] \"A\": headers.X-Key: environment variable UNSET_KEY is not set",
                "service[1] \"A\": conditions[1]: environment variable UNSET_STATUS is not set",
            ]
        );
    }

    #[test]
    fn no_message_shows_a_secret() {
        let env = |name: &str| match name {
            "INTERVAL" => Some("every-tuesday".to_string()),
            "HOOK" => Some("T0/B0/hook-secret".to_string()),
            "PASS" => Some("minio-secret".to_string()),
            _ => None,
        };
        let e = from_toml(
            r#"
            [server]
            public_url = "ftp://status.example.com/?sig=sig-secret"
            [backup]
            target = "s3://b-bucket/prefix"
            endpoint = "http://minio:${PASS}@127.0.0.1:9000"
            [[service]]
            name = "A"
            url = "http://a b/?token=raw-secret"
            [[service]]
            name = "B"
            url = "ftp://user:pw-secret@b/path-secret"
            interval = "${INTERVAL}"
            [[notify]]
            kind = "slack"
            url = "https://hooks example.com/${HOOK}"
            "#,
            ConfigSource::Embedded,
            &env,
        )
        .expect_err("invalid");
        assert_eq!(
            e.problems(),
            [
                "server: public_url \"ftp://status.example.com\" must start with http:// or https://",
                "backup: endpoint must not hold a user name or password (S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                "service[1] \"A\": url is not a valid URL (invalid international domain name)",
                "service[2] \"B\": url \"ftp://b\" must start with http://, https://, tcp://, tls://, dns://, postgres:// or redis://",
                "service[2] \"B\": interval \"${INTERVAL}\" is not a duration (write it like \"500ms\", \"30s\", \"5m\" or \"1h\")",
                "notify[1]: url is not a valid URL (invalid international domain name)",
                "server: public_url is required with [[notify]]: alerts link to the status page",
            ]
        );
        let message = e.to_string();
        for secret in ["secret", "every-tuesday"] {
            assert!(!message.contains(secret), "{message}");
        }
        // An endpoint is scheme, host and port: nothing else to hide.
        for (endpoint, problem) in [
            ("http://127.0.0.1:9000/bucket-path", "backup: endpoint must be a scheme, host and port only, with no path or query; write it like http://127.0.0.1:9000 or https://s3.example.com"),
            ("https://s3.example.com/?X-Amz-Signature=x", "backup: endpoint must be a scheme, host and port only, with no path or query; write it like http://127.0.0.1:9000 or https://s3.example.com"),
            ("ftp://s3.example.com", "backup: endpoint \"ftp://s3.example.com\" must be an http:// or https:// URL"),
        ] {
            let found = problems(&format!(
                "[backup]\ntarget = \"s3://b-bucket\"\nendpoint = \"{endpoint}\"\n"
            ));
            assert_eq!(found, [problem], "{endpoint}");
        }
        let config = from_toml(
            "[backup]\ntarget = \"s3://b-bucket\"\nendpoint = \"http://127.0.0.1:9000/\"\n",
            ConfigSource::Embedded,
            &no_env,
        )
        .expect("valid");
        assert_eq!(
            config.backup.and_then(|b| b.endpoint).as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }
}
