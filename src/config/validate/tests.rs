use std::time::Duration;

use super::from_toml;
use crate::config::*;

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
        include_str!("../../../examples/beacon.toml"),
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
            "notify[2] \"hook\": events: \"service_exploded\" is not one of service_down, service_degraded, service_recovered, incident_opened, incident_updated, incident_resolved, backup_failed, backup_verification_failed, certificate_expiring, location_silent, location_back, maintenance_scheduled, maintenance_started, maintenance_completed, maintenance_cancelled",
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
    let found =
        problems("[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\n");
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

/// Unknown keys are listed in the file's order, the services' among the
/// rest (they are read one at a time, after the other tables).
#[test]
fn unknown_keys_are_listed_in_the_file_s_order() {
    let found = problems(
        r#"
            [[service]]
            name = "A"
            url = "http://a/"
            timout = "5s"

            [server]
            listn = ":80"
            "#,
    );
    assert_eq!(
        found,
        [
            "service[1] \"A\": unknown key \"timout\" (did you mean \"timeout\"?)",
            "server: unknown key \"listn\" (did you mean \"listen\"?)",
        ]
    );
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
fn direct_url_is_for_postgresql_and_never_prints_its_password() {
    assert_eq!(
        problems("[storage]\nurl = \"sqlite://data/b.db\"\ndirect_url = \"postgres://u:pw@h/db\"\n"),
        ["storage: direct_url: only for PostgreSQL (storage.url is not a postgres:// URL); remove it"]
    );
    assert_eq!(
        problems("[storage]\nurl = \"postgres://u:pw@pooler:6432/db\"\ndirect_url = \"mysql://u:pw@h/db\"\n"),
        ["storage: direct_url \"mysql://h\": must start with postgres://"]
    );
    let env = |name: &str| match name {
        "BEACON_STORAGE_URL" => Some("postgres://u:pw@pooler:6432/db".to_string()),
        "BEACON_STORAGE_DIRECT_URL" => Some("postgres://u:secret@db:5432/db".to_string()),
        _ => None,
    };
    let config = from_toml("", ConfigSource::Embedded, &env).expect("valid");
    let direct = config.storage.direct_url.as_ref().expect("direct_url");
    assert_eq!(direct.expose(), "postgres://u:secret@db:5432/db");
    assert_eq!(config.storage.session_url(), direct);
    assert_eq!(format!("{direct:?}"), "DatabaseUrl(postgres://db:5432)");
    let plain = from_toml("", ConfigSource::Embedded, &no_env).expect("valid");
    assert_eq!(plain.storage.session_url(), &plain.storage.url);
}

#[test]
fn per_client_limits_are_read_and_checked() {
    let config = from_toml(
        "[server]\nclient_rate = 5\nclient_burst = 50\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n",
        ConfigSource::Embedded,
        &no_env,
    )
    .expect("valid");
    let clients = &config.server.limits.clients;
    assert_eq!((clients.rate, clients.burst), (5.0, 50));
    assert_eq!(
        clients.trusted_proxies,
        [
            "10.0.0.0/8".parse::<ipnet::IpNet>().expect("net"),
            "192.0.2.7/32".parse().expect("net")
        ]
    );
    assert_eq!(
        problems("[server]\nclient_rate = -1\nclient_burst = 0\ntrusted_proxies = [\"10.0.0.0/33\"]\n"),
        [
            "server: client_rate (-1) must be between 0 (off) and 100000 requests a second",
            "server: client_burst (0) must be between 1 and 1000000",
            "server: trusted_proxies[0] \"10.0.0.0/33\": not an address or a CIDR block like 10.0.0.0/8",
        ]
    );
    let default = from_toml("", ConfigSource::Embedded, &no_env).expect("valid");
    assert_eq!(default.server.limits.clients, ClientLimits::default());
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

#[test]
fn locations_and_quorums_are_read_and_checked_with_their_place() {
    let env = |name: &str| match name {
        "EU" => Some("eu-0123456789abcdef0123456789abcdef".to_string()),
        "US" => Some("us-0123456789abcdef0123456789abcdef".to_string()),
        _ => None,
    };
    let text = r#"
        [server]
        location = "home"
        [[location]]
        name = "eu-west"
        token = "${EU}"
        [[location]]
        name = "us-east"
        token = "${US}"
        [[group]]
        name = "Shop"
        [[service]]
        name = "API"
        group = "Shop"
        url = "https://api.example.com/health"
        headers = { Authorization = "Bearer ${EU}", X-Literal = "$${NOT_A_VAR}" }
        locations = ["home", "eu-west", "us-east"]
        [[service]]
        name = "Remote only"
        url = "https://remote.example.com/health"
        locations = ["us-east"]
        [[service]]
        name = "Home only"
        url = "https://home.example.com/health"
        locations = ["home"]
        [[service]]
        name = "Plain"
        url = "https://plain.example.com/health"
    "#;
    let config = from_toml(text, ConfigSource::Embedded, &env).expect("valid");
    assert_eq!(config.server.location, "home");
    let api = config.services[0].locations.as_ref().expect("located");
    assert_eq!(api.names, ["home", "eu-west", "us-east"]);
    assert_eq!(api.quorum, 2, "a majority of three");
    assert_eq!(api.local, Some(0));
    assert!(config.services[0].probed_here());
    let remote = config.services[1].locations.as_ref().expect("located");
    assert_eq!((remote.quorum, remote.local), (1, None));
    assert!(!config.services[1].probed_here());
    assert!(
        config.services[2].locations.is_none(),
        "home alone is today's behaviour"
    );
    assert!(config.services[3].locations.is_none());
    // The location tokens are never printed.
    assert!(!format!("{:?}", config.locations).contains("0123456789abcdef"));

    // Each agent's assignment: its services only, secrets substituted, a
    // literal "${" kept literal, read back by the same validation.
    let us = &config.assignments.by_location["us-east"];
    assert_eq!(us.services, 2);
    let eu = &config.assignments.by_location["eu-west"];
    assert_eq!(eu.services, 1);
    assert!(!eu.toml.contains("locations"), "{}", eu.toml);
    let agent = from_toml(&eu.toml, ConfigSource::Assignment("test".into()), &no_env)
        .expect("the assignment validates");
    assert_eq!(agent.services.len(), 1);
    let headers = &agent.services[0].http.headers;
    assert!(headers.contains(&(
        "Authorization".to_string(),
        "Bearer eu-0123456789abcdef0123456789abcdef".to_string()
    )));
    assert!(headers.contains(&("X-Literal".to_string(), "${NOT_A_VAR}".to_string())));
    assert_eq!(agent.services[0].group.as_deref(), Some("Shop"));

    let found = problems(
        r#"
        [server]
        location = "bad name!"
        [[location]]
        name = "local"
        token = "0123456789abcdef0123456789abcdef"
        [[location]]
        name = "eu"
        token = "short"
        [[location]]
        name = "eu"
        token = "0123456789abcdef0123456789abcdeX"
        [[service]]
        name = "A"
        url = "https://a.example.com"
        locations = ["eu", "mars", "eu"]
        [[service]]
        name = "B"
        url = "https://b.example.com"
        locations = ["eu"]
        quorum = 3
        [[service]]
        name = "C"
        url = "https://c.example.com"
        quorum = 1
        [[service]]
        name = "D"
        url = "https://d.example.com"
        locations = []
    "#,
    );
    let expected = [
        "server: location \"bad name!\" is not a valid location name (1 to 40 letters, digits, '-', '_' or '.')",
        "location[2] \"eu\": token is shorter than 32 characters (e.g. `openssl rand -hex 32`)",
        "location[3] \"eu\": name \"eu\" is already used by location[2]",
        "service[1] \"A\": locations lists \"eu\" twice",
        "service[2] \"B\": quorum = 3, but it must be between 1 and the number of locations (1)",
        "service[3] \"C\": quorum is set but locations is not (a quorum counts locations)",
    ];
    for e in expected {
        assert!(
            found.iter().any(|f| f == e),
            "missing: {e}\nfound: {found:#?}"
        );
    }
    assert!(
        found.iter().any(|f| f
            .starts_with("service[1] \"A\": locations names \"mars\", which is not a location")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("service[4] \"D\": locations is empty")),
        "{found:#?}"
    );
}
