//! Table tests with bodies written after each format's own field names.

use super::*;

const HJ: Option<&str> = Some("application/health+json");
const JSON: Option<&str> = Some("application/json");
const TEXT: Option<&str> = Some("text/plain; charset=utf-8");

fn doc(ct: Option<&str>, body: &str) -> HealthDoc {
    parse(ct, body.as_bytes(), Format::Auto)
        .unwrap_or_else(|e| panic!("{body}: {e}"))
        .unwrap_or_else(|| panic!("{body}: no format detected"))
}

fn deps(d: &HealthDoc) -> Vec<(&str, Health)> {
    d.dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.health))
        .collect()
}

#[test]
fn ietf_pass_with_a_failing_check_is_degraded() {
    let d = doc(
        HJ,
        r#"{"status":"pass","checks":{"db:responseTime":[{"status":"fail"}]}}"#,
    );
    assert_eq!(d.format, Format::HealthJson);
    assert_eq!(d.health, Health::Pass);
    assert_eq!(deps(&d), [("db", Health::Fail)]);
    assert_eq!(d.effective(), Health::Warn);
}

#[test]
fn ietf_full_document() {
    let body = r#"{
      "status": "warn", "version": "1", "releaseId": "1.2.2",
      "notes": [""], "output": "", "serviceId": "f03e522f",
      "checks": {
        "cassandra:responseTime": [{
          "componentId": "dfd6cf2b", "componentType": "datastore",
          "observedValue": 250, "observedUnit": "ms",
          "status": "pass", "time": "2018-01-17T03:36:48Z", "output": ""
        }],
        "cassandra:connections": [{
          "componentId": "dfd6cf2b", "componentType": "datastore",
          "observedValue": 75, "status": "warn",
          "time": "2018-01-17T03:36:48Z", "output": "75 of 100 connections in use"
        }],
        "uptime": [{ "componentType": "system", "observedValue": 1209600.245,
          "observedUnit": "s", "status": "pass", "time": "2018-01-17T03:42:44Z" }],
        "cpu:utilization": [
          { "componentId": "6fd416e0", "node": 1, "observedValue": 85, "observedUnit": "percent", "status": "warn" },
          { "componentId": "6fd416e0-2", "node": 2, "observedValue": 40, "observedUnit": "percent", "status": "pass" }
        ]
      }
    }"#;
    let d = doc(HJ, body);
    assert_eq!(d.health, Health::Warn);
    assert_eq!(
        deps(&d),
        [
            ("cassandra", Health::Warn),
            ("uptime", Health::Pass),
            ("cpu", Health::Warn)
        ],
        "one entry per component, the worst; componentIds never become names"
    );
    let cassandra = &d.dependencies[0];
    assert_eq!(
        cassandra.output.as_deref(),
        Some("75 of 100 connections in use")
    );
    assert_eq!(cassandra.observed.as_deref(), Some("75"));
    assert_eq!(d.dependencies[2].observed.as_deref(), Some("85 percent"));
}

#[test]
fn ietf_status_words() {
    for (word, health) in [
        ("pass", Health::Pass),
        ("ok", Health::Pass),
        ("up", Health::Pass),
        ("warn", Health::Warn),
        ("fail", Health::Fail),
        ("error", Health::Fail),
        ("down", Health::Fail),
    ] {
        let d = doc(HJ, &format!(r#"{{"status":"{word}"}}"#));
        assert_eq!(d.health, health, "{word}");
    }
}

#[test]
fn ietf_detected_from_the_body_without_its_content_type() {
    let d = doc(
        JSON,
        r#"{"status":"pass","checks":{"redis:ping":[{"status":"pass"}]}}"#,
    );
    assert_eq!(d.format, Format::HealthJson);
    assert_eq!(deps(&d), [("redis", Health::Pass)]);
}

#[test]
fn actuator_components_and_statuses() {
    let body = r#"{
      "status": "DOWN",
      "components": {
        "db": {"status": "UP", "details": {"database": "PostgreSQL", "validationQuery": "isValid()"}},
        "diskSpace": {"status": "UP", "details": {"total": 1000, "free": 500, "threshold": 10}},
        "mail": {"status": "DOWN", "details": {"error": "Connection refused"}},
        "ping": {"status": "UP"},
        "custom": {"status": "OUT_OF_SERVICE"},
        "legacy": {"status": "UNKNOWN"}
      }
    }"#;
    let d = doc(Some("application/vnd.spring-boot.actuator.v3+json"), body);
    assert_eq!(d.format, Format::Actuator);
    assert_eq!(d.health, Health::Fail);
    assert_eq!(
        deps(&d),
        [
            ("db", Health::Pass),
            ("diskSpace", Health::Pass),
            ("mail", Health::Fail),
            ("ping", Health::Pass),
            ("custom", Health::Fail),
            ("legacy", Health::Warn),
        ]
    );
    assert!(d.dependencies[2]
        .output
        .as_deref()
        .unwrap_or("")
        .contains("Connection refused"));
}

#[test]
fn actuator_detected_from_plain_json_and_older_spring_boot_shapes() {
    let d = doc(JSON, r#"{"status":"UP"}"#);
    assert_eq!((d.format, d.health), (Format::Actuator, Health::Pass));
    let d = doc(
        JSON,
        r#"{"status":"UP","details":{"redis":{"status":"DOWN"}}}"#,
    );
    assert_eq!(d.format, Format::Actuator);
    assert_eq!(deps(&d), [("redis", Health::Fail)]);
    assert_eq!(d.effective(), Health::Warn);

    // Spring Boot 1.x: components beside "status".
    let d = doc(
        JSON,
        r#"{"status":"DOWN","db":{"status":"DOWN","error":"x"},"diskSpace":{"status":"UP","free":1}}"#,
    );
    assert_eq!(d.format, Format::Actuator);
    assert_eq!(
        deps(&d),
        [("db", Health::Fail), ("diskSpace", Health::Pass)]
    );
}

#[test]
fn simple_form_with_booleans_objects_and_arrays() {
    let d = doc(
        JSON,
        r#"{"status":"healthy","checks":{"database":true,"redis":false}}"#,
    );
    assert_eq!(d.format, Format::Simple);
    assert_eq!(
        deps(&d),
        [("database", Health::Pass), ("redis", Health::Fail)]
    );
    assert_eq!(d.effective(), Health::Warn);

    let d = doc(
        JSON,
        r#"{"status":"ok","checks":{"db":{"status":"up"},"queue":{"status":"down","error":"timeout"}}}"#,
    );
    assert_eq!(deps(&d), [("db", Health::Pass), ("queue", Health::Fail)]);
    assert_eq!(d.dependencies[1].output.as_deref(), Some("timeout"));

    let d = doc(
        JSON,
        r#"{"status":"unhealthy","checks":[{"name":"db","status":"healthy"}]}"#,
    );
    assert_eq!(d.health, Health::Fail);
    assert_eq!(deps(&d), [("db", Health::Pass)]);

    let d = doc(None, r#"{"healthy": true}"#);
    assert_eq!(d.health, Health::Pass);
}

#[test]
fn kubernetes_verbose_text() {
    let body = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]informer-sync ok\nhealthz check failed\n";
    let d = doc(TEXT, body);
    assert_eq!(d.format, Format::Kubernetes);
    assert_eq!(d.health, Health::Fail);
    assert_eq!(
        deps(&d),
        [
            ("ping", Health::Pass),
            ("log", Health::Pass),
            ("etcd", Health::Fail),
            ("informer-sync", Health::Pass)
        ]
    );
    assert_eq!(d.dependencies[2].output.as_deref(), Some("reason withheld"));

    let d = doc(TEXT, "[+]ping ok\n[+]etcd ok\nlivez check passed\n");
    assert_eq!(d.health, Health::Pass);

    // Plain text that merely ends like a verdict is not Kubernetes'.
    assert_eq!(
        parse(TEXT, b"deploy smoke check failed", Format::Auto),
        Ok(None)
    );
    // A body cut inside a character is read up to it.
    let cut = b"[+]ping ok\n[-]etcd failed: \xc3";
    let d = parse(TEXT, cut, Format::Auto).expect("ok").expect("doc");
    assert_eq!(deps(&d), [("ping", Health::Pass), ("etcd", Health::Fail)]);
}

#[test]
fn unknown_bodies_fall_back_to_the_status_code() {
    for (ct, body) in [
        (TEXT, "OK"),
        (Some("text/html"), "<html><body>fine</body></html>"),
        (JSON, r#"{"uptime": 12}"#),
        (JSON, r#"[1, 2, 3]"#),
        (None, ""),
        (None, "{not json"),
        (JSON, r#"{"status":"banana"}"#),
    ] {
        assert_eq!(parse(ct, body.as_bytes(), Format::Auto), Ok(None), "{body}");
    }
}

#[test]
fn malformed_bodies_give_a_short_reason() {
    let err =
        parse(HJ, b"{\"status\": \"pass\", \"checks\": {", Format::Auto).expect_err("malformed");
    assert!(err.starts_with("malformed health JSON: EOF"), "{err}");
    let err = parse(HJ, br#"{"checks":{}}"#, Format::Auto).expect_err("no status");
    assert_eq!(err, "health document has no \"status\"");
    let err = parse(JSON, br#"{"status":"banana"}"#, Format::Simple).expect_err("forced");
    assert_eq!(err, "health document has an unknown status \"banana\"");
    let garbage: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let err = parse(JSON, &garbage, Format::Auto).expect_err("garbage");
    assert!(err.starts_with("malformed health JSON"), "{err}");
    assert!(parse(None, &garbage, Format::Kubernetes).is_err());
}

#[test]
fn a_forced_format_wins_over_detection() {
    // Upper-case status would be detected as Actuator; forced simple reads it too.
    let d = parse(
        JSON,
        br#"{"status":"UP","checks":{"db":false}}"#,
        Format::Simple,
    )
    .expect("ok")
    .expect("doc");
    assert_eq!(d.format, Format::Simple);
    assert_eq!(deps(&d), [("db", Health::Fail)]);
    assert_eq!(parse(HJ, br#"{"status":"fail"}"#, Format::None), Ok(None));
}

/// Issue 21: 4,000 checks in a 52 KB body made every page and `/metrics`
/// list 4,000 dependencies. At most MAX_DEPENDENCIES are kept, the worst.
#[test]
fn thousands_of_dependencies_are_capped_keeping_the_worst() {
    let mut checks: Vec<String> = (0..4_000).map(|i| format!("\"c{i}\":true")).collect();
    checks.insert(10, format!("\"{}\":\"warn\"", "w".repeat(300)));
    checks.push("\"db\":false".into());
    let body = format!(
        "{{\"status\":\"pass\",\"checks\":{{{}}}}}",
        checks.join(",")
    );
    assert!(body.len() < 64 * 1024);
    let d = doc(JSON, &body);
    assert_eq!(d.dependencies.len(), MAX_DEPENDENCIES);
    assert_eq!(d.omitted, 4_002 - MAX_DEPENDENCIES);
    let names: Vec<&str> = d.dependencies.iter().map(|d| d.name.as_str()).collect();
    // The document's order, the warning and the failure kept, and passing
    // ones from the top after them.
    assert_eq!(
        names[..10],
        ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"]
    );
    assert!(names[10].starts_with("www") && names[10].ends_with('…'));
    assert!(names[10].len() <= crate::domain::text::MAX_NAME_BYTES + 3);
    assert_eq!(names[MAX_DEPENDENCIES - 1], "db");
    assert_eq!(d.effective(), Health::Warn);

    // IETF documents merge per component first, then are capped the same.
    let checks: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "\"c{i}:time\":[{{\"status\":\"pass\"}}],\"c{i}:load\":[{{\"status\":\"pass\"}}]"
            )
        })
        .chain(["\"db:time\":[{\"status\":\"fail\"}]".to_string()])
        .collect();
    let body = format!(
        "{{\"status\":\"pass\",\"checks\":{{{}}}}}",
        checks.join(",")
    );
    let d = doc(HJ, &body);
    assert_eq!(
        (d.dependencies.len(), d.omitted),
        (MAX_DEPENDENCIES, 201 - MAX_DEPENDENCIES)
    );
    assert!(deps(&d).contains(&("db", Health::Fail)));
}
