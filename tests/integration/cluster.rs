//! Several `beacon serve` replicas on one PostgreSQL database (issue 16):
//! real processes from the real binary, killed with `kill -9`, paused with
//! SIGSTOP, their connections cut; real targets that log which replica
//! probed them (the `Beacon-Member` header). And the refusal of a second
//! replica on one SQLite file.
//!
//! Every replica runs with `lease = "3s"`, `heartbeat = "1s"` and services
//! probed every second, so hand-overs are measured in seconds; the bounds
//! asserted are the contract's plus [`harness::SLACK`], and the measured
//! figures are printed (`cargo test -- --nocapture`).

pub mod harness;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use harness::{
    config_text, hold, leadership_invariants, metric, paths, pg_count, services, slugs, until,
    Availability, Cluster, HitTarget, Replica, Watcher, Webhook, HEARTBEAT, INTERVAL, LEASE, SLACK,
};

use crate::helpers::TestDb;

const ALL: [usize; 3] = [0, 1, 2];

const ADMIN_TOKEN: &str = "cluster-admin-token-0123456789";

/// How long a cluster may take to form (three debug binaries starting and
/// migrating on a loaded machine, then a heartbeat or two).
const FORM: Duration = Duration::from_secs(20);

/// Waits out the hand-over that follows a membership change (each service
/// probed `2` times from `now`), then waits until each service of `paths`
/// has been probed `n` more times, and returns who probed what in that
/// window: path → member → hits.
async fn steady_window(
    target: &HitTarget,
    paths: &[String],
    n: u64,
) -> HashMap<String, HashMap<String, u64>> {
    target
        .each_hit(paths, 2, Instant::now(), Duration::from_secs(15))
        .await;
    let window = Instant::now();
    target
        .each_hit(paths, n, window, Duration::from_secs(15))
        .await;
    target.counts(window)
}

/// Each path's one prober in `counts`; fails naming the paths that had
/// none or several.
fn sole_probers(
    counts: &HashMap<String, HashMap<String, u64>>,
    paths: &[String],
) -> BTreeMap<String, String> {
    let mut owners = BTreeMap::new();
    let mut shared = Vec::new();
    for path in paths {
        let by = counts.get(path).cloned().unwrap_or_default();
        match by.keys().collect::<Vec<_>>()[..] {
            [member] => {
                owners.insert(path.clone(), member.clone());
            }
            _ => shared.push(format!("{path}: {by:?}")),
        }
    }
    assert!(
        shared.is_empty(),
        "{} of {} services were not probed by exactly one member: {}",
        shared.len(),
        paths.len(),
        shared.join("; ")
    );
    owners
}

/// How many services each member probed.
fn per_member(owners: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for member in owners.values() {
        *per.entry(member.clone()).or_default() += 1;
    }
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_probing_and_agree() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    const SERVICES: usize = 60;
    let target = HitTarget::start().await;
    let cluster = Cluster::start(
        db.dir.path(),
        3,
        &config_text(
            &db.url,
            true,
            &format!(
                "[admin]\ntokens = [\"{ADMIN_TOKEN}\"]\n{}",
                services(&target, SERVICES)
            ),
        ),
    )
    .await;
    let settled = cluster.settled(&ALL, FORM).await;

    // Each service is probed by exactly one member, every member probes
    // some, and the header names members the cluster knows (a probe
    // without the header would count under "").
    let paths = paths(SERVICES);
    let owners = sole_probers(&steady_window(&target, &paths, 3).await, &paths);
    let per = per_member(&owners);
    eprintln!("services per member out of {SERVICES}: {per:?}");
    assert_eq!(
        per.keys().cloned().collect::<BTreeSet<_>>(),
        settled.members,
        "every member probes some services, and the Beacon-Member header is its id"
    );

    // Nothing moved meanwhile: same members, same leader, same epoch.
    let still = cluster.settled(&ALL, Duration::from_secs(5)).await;
    assert_eq!(still.members, settled.members);
    assert_eq!(
        (still.leader, still.epoch),
        (settled.leader, settled.epoch),
        "leadership is stable in steady state"
    );

    // Every replica's page shows what the others probed.
    let expected: Vec<(String, &str)> = slugs(SERVICES)
        .into_iter()
        .map(|s| (s, "operational"))
        .collect();
    cluster
        .summaries_agree(&ALL, &expected, Duration::from_secs(15))
        .await;

    // An incident written through replica 0 is on the others' pages
    // within 2 s (each polls the store's change counter every second).
    let written = Instant::now();
    let response = cluster
        .client
        .post(cluster.url(0, "/admin/api/incidents"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"title":"Payments delayed","impact":"minor","message":"We are looking into it.","services":["svc-1"]}"#)
        .send()
        .await
        .expect("admin API answers");
    assert_eq!(response.status().as_u16(), 201, "incident created");
    let mut seen = Vec::new();
    for i in [1, 2] {
        until(
            "the incident is on every replica's incidents.json",
            Duration::from_secs(2) + SLACK,
            || async {
                let incidents = cluster.incidents(i).await?;
                if incidents.iter().any(|x| x["name"] == "Payments delayed") {
                    Ok(())
                } else {
                    Err(format!(
                        "replica {i}: {} incidents, not the new one",
                        incidents.len()
                    ))
                }
            },
        )
        .await;
        seen.push(written.elapsed());
    }
    eprintln!("an incident written through replica 0 was on replicas 1 and 2 after {seen:?}");
    assert!(
        seen.iter().all(|t| *t <= Duration::from_secs(2) + SLACK),
        "{seen:?}"
    );

    // The gauges say the same as /health.
    until(
        "the cluster gauges agree with /health",
        Duration::from_secs(10),
        || async {
            for i in ALL {
                let text = cluster.metrics(i).await?;
                let got = [
                    "beacon_cluster_leader",
                    "beacon_cluster_epoch",
                    "beacon_cluster_members",
                ]
                .map(|name| metric(&text, name));
                let leader = if i == settled.leader { 1.0 } else { 0.0 };
                let want = [Some(leader), Some(settled.epoch as f64), Some(3.0)];
                if got != want {
                    return Err(format!(
                        "replica {i}: leader, epoch, members = {got:?}, want {want:?}"
                    ));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Every replica lists one incident, about the API, in `status`, and the
/// database holds one automatic incident.
async fn one_incident(cluster: &Cluster, db_url: &str, status: &str) -> Result<(), String> {
    for i in ALL {
        let incidents = cluster.incidents(i).await?;
        let [incident] = &incidents[..] else {
            return Err(format!(
                "replica {i} lists {} incidents: {incidents:?}",
                incidents.len()
            ));
        };
        if !incident["name"].as_str().is_some_and(|n| n.contains("API"))
            || incident["status"] != status
        {
            return Err(format!("replica {i}: {incident}"));
        }
    }
    let automatic = pg_count(db_url, "SELECT COUNT(*) FROM incidents WHERE automatic").await?;
    if automatic != 1 {
        return Err(format!("{automatic} automatic incidents in the database"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_opens_one_incident_and_one_alert_each_way_across_replicas() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    const OTHERS: usize = 5;
    let target = HitTarget::start().await;
    let hook = Webhook::start().await;
    let body = format!(
        "{}[[service]]\nname = \"API\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"800ms\"\n\
         failure_threshold = 2\nsuccess_threshold = 1\n{}",
        services(&target, OTHERS),
        target.url("switch"),
        hook.toml()
    );
    let cluster = Cluster::start(db.dir.path(), 3, &config_text(&db.url, true, &body)).await;
    cluster.settled(&ALL, FORM).await;
    once_down_once_up(&cluster, &target, &hook, &db.url, OTHERS).await;
}

/// The `api` service of `cluster` (with `others` services besides) goes
/// down and comes back: one alert each way, one automatic incident, every
/// replica's page agreeing, no event delivered twice.
async fn once_down_once_up(
    cluster: &Cluster,
    target: &HitTarget,
    hook: &Webhook,
    db_url: &str,
    others: usize,
) {
    let with_api = |api: &'static str| -> Vec<(String, &'static str)> {
        slugs(others)
            .into_iter()
            .map(|s| (s, "operational"))
            .chain([("api".to_string(), api)])
            .collect()
    };
    cluster
        .summaries_agree(&ALL, &with_api("operational"), Duration::from_secs(15))
        .await;
    assert!(
        hook.of("service_down").is_empty() && hook.of("service_recovered").is_empty(),
        "unknown → up is not an alert: {:?}",
        hook.all()
    );

    // Down: one alert, one automatic incident, whichever replica probes it.
    target.switch.store(500, Ordering::SeqCst);
    let flipped = Instant::now();
    until(
        "the service_down alert arrives",
        Duration::from_secs(20),
        || async {
            match hook.of("service_down").len() {
                0 => Err("none yet".to_string()),
                _ => Ok(()),
            }
        },
    )
    .await;
    eprintln!(
        "service_down delivered {} ms after the target failed",
        flipped.elapsed().as_millis()
    );
    until(
        "every replica lists the one automatic incident",
        Duration::from_secs(15),
        || one_incident(cluster, db_url, "investigating"),
    )
    .await;
    cluster
        .summaries_agree(&ALL, &with_api("major_outage"), Duration::from_secs(15))
        .await;
    hold(
        "one service_down, one incident",
        Duration::from_secs(3),
        || async {
            let down = hook.of("service_down").len();
            if down != 1 {
                return Err(format!("{down} service_down deliveries: {:?}", hook.all()));
            }
            one_incident(cluster, db_url, "investigating").await
        },
    )
    .await;

    // Up again: one recovery alert, the incident resolved, still one.
    target.switch.store(200, Ordering::SeqCst);
    until(
        "the service_recovered alert arrives",
        Duration::from_secs(20),
        || async {
            match hook.of("service_recovered").len() {
                0 => Err("none yet".to_string()),
                _ => Ok(()),
            }
        },
    )
    .await;
    until(
        "every replica shows the incident resolved",
        Duration::from_secs(15),
        || one_incident(cluster, db_url, "resolved"),
    )
    .await;
    hold(
        "one alert each way, one incident",
        Duration::from_secs(3),
        || async {
            let counts = (
                hook.of("service_down").len(),
                hook.of("service_recovered").len(),
            );
            if counts != (1, 1) {
                return Err(format!("(down, recovered) = {counts:?}: {:?}", hook.all()));
            }
            one_incident(cluster, db_url, "resolved").await
        },
    )
    .await;
    cluster
        .summaries_agree(&ALL, &with_api("operational"), Duration::from_secs(15))
        .await;

    // No event, of any kind, reached the receiver twice.
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    for body in hook.all() {
        *events
            .entry(format!("{} {}", body["event"], body["id"]))
            .or_default() += 1;
    }
    assert!(
        events.values().all(|n| *n == 1),
        "an event was delivered more than once: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_within_the_lease() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    const SERVICES: usize = 45;
    let target = HitTarget::start().await;
    let mut cluster = Cluster::start(
        db.dir.path(),
        3,
        &config_text(&db.url, true, &services(&target, SERVICES)),
    )
    .await;
    let before = cluster.settled(&ALL, FORM).await;
    let paths = paths(SERVICES);
    let owners = sole_probers(&steady_window(&target, &paths, 2).await, &paths);
    let leader = before.leader;
    let dead = before.views[leader].member.clone();
    let orphans: Vec<String> = owners
        .iter()
        .filter(|(_, member)| **member == dead)
        .map(|(path, _)| path.clone())
        .collect();
    assert!(
        !orphans.is_empty(),
        "the leader probes some services: {:?}",
        per_member(&owners)
    );
    let survivors: Vec<usize> = ALL.into_iter().filter(|&i| i != leader).collect();
    let watcher = Watcher::watch(&cluster);
    let pages: Vec<Availability> = survivors
        .iter()
        .map(|&i| {
            Availability::watch(
                cluster.client.clone(),
                cluster.replicas[i].name.clone(),
                cluster.url(i, "/"),
            )
        })
        .collect();

    watcher.pause(leader);
    cluster.replicas[leader].kill9();
    // Reaped: from here on nothing of it runs.
    let killed = Instant::now();

    // A survivor leads, with a higher epoch.
    let new = cluster
        .new_leader(&survivors, before.epoch, Duration::from_secs(20))
        .await;
    let handover = killed.elapsed();

    // The dead member's services are probed again, by survivors.
    let first_after = until(
        "every service of the dead member is probed again",
        Duration::from_secs(20),
        || async {
            let mut first: BTreeMap<String, Duration> = BTreeMap::new();
            // (A request the dead one sent just before dying may still be
            // read after `killed`: its hits are not a take-over.)
            for hit in target.since(killed) {
                if hit.member != dead
                    && orphans.contains(&hit.path)
                    && !first.contains_key(&hit.path)
                {
                    first.insert(hit.path.clone(), hit.at - killed);
                }
            }
            if first.len() == orphans.len() {
                Ok(first)
            } else {
                Err(format!("{} of {} probed again", first.len(), orphans.len()))
            }
        },
    )
    .await;
    let reprobe = first_after.values().max().copied().unwrap_or_default();
    eprintln!(
        "kill -9 of the leader (epoch {}): replica {} leads at epoch {} after {} ms \
         (bound {} ms); its {} services probed again within {} ms (bound {} ms)",
        before.epoch,
        new.member,
        new.epoch,
        handover.as_millis(),
        (LEASE + 2 * HEARTBEAT + SLACK).as_millis(),
        orphans.len(),
        reprobe.as_millis(),
        (LEASE + HEARTBEAT + INTERVAL + SLACK).as_millis(),
    );
    assert!(
        handover <= LEASE + 2 * HEARTBEAT + SLACK,
        "hand-over took {handover:?}"
    );
    assert!(
        reprobe <= LEASE + HEARTBEAT + INTERVAL + SLACK,
        "the dead member's services were unprobed for up to {reprobe:?}"
    );

    // The survivors settle on the new leader, and share every service.
    let after = cluster.settled(&survivors, Duration::from_secs(10)).await;
    let mut remaining = before.members.clone();
    remaining.remove(&dead);
    assert_eq!(after.members, remaining, "the dead member is gone");
    assert_eq!(after.epoch, new.epoch);
    let owners = sole_probers(&steady_window(&target, &paths, 2).await, &paths);
    assert_eq!(
        per_member(&owners).keys().cloned().collect::<BTreeSet<_>>(),
        remaining,
        "both survivors probe"
    );

    // The page never stopped answering on the survivors.
    for page in pages {
        let (asked, bad) = page.stop().await;
        assert!(
            bad.is_empty(),
            "{} of {asked} requests to / failed during the hand-over: {bad:?}",
            bad.len()
        );
    }
    leadership_invariants(&watcher.stop().await).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_learns_it_lost_the_lease() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let target = HitTarget::start().await;
    let cluster = Cluster::start(
        db.dir.path(),
        3,
        &config_text(&db.url, true, &services(&target, 6)),
    )
    .await;
    let before = cluster.settled(&ALL, FORM).await;
    let leader = before.leader;
    let old = before.views[leader].clone();
    let others: Vec<usize> = ALL.into_iter().filter(|&i| i != leader).collect();
    let watcher = Watcher::watch(&cluster);

    // Paused past its lease: someone else takes the lead, higher epoch.
    watcher.pause(leader);
    cluster.replicas[leader].signal("STOP");
    let stopped = Instant::now();
    let new = cluster
        .new_leader(&others, old.epoch, Duration::from_secs(20))
        .await;
    let taken = stopped.elapsed();

    // Resumed, it knows at once that the lead is gone.
    cluster.replicas[leader].signal("CONT");
    let resumed = Instant::now();
    watcher.resume(leader);
    let follower = until(
        "the resumed replica reports follower and the new epoch",
        Duration::from_secs(15),
        || async {
            let v = cluster.view(leader).await?;
            if v.role == "follower" && v.epoch >= new.epoch {
                Ok(v)
            } else {
                Err(format!("{v:?}"))
            }
        },
    )
    .await;
    let learnt = resumed.elapsed();
    eprintln!(
        "SIGSTOP of the leader (epoch {}): {} leads at epoch {} after {} ms; \
         after SIGCONT the old leader reports follower at epoch {} within {} ms (bound {} ms)",
        old.epoch,
        new.member,
        new.epoch,
        taken.as_millis(),
        follower.epoch,
        learnt.as_millis(),
        (2 * HEARTBEAT + SLACK).as_millis()
    );
    assert!(learnt <= 2 * HEARTBEAT + SLACK, "took {learnt:?}");

    let after = cluster.settled(&ALL, Duration::from_secs(10)).await;
    assert_eq!(
        (after.views[after.leader].member.as_str(), after.epoch),
        (new.member.as_str(), new.epoch),
        "the new leader keeps the lead"
    );
    hold("one leader, stable", Duration::from_secs(2), || async {
        let views = cluster.views(&ALL).await?;
        let leaders: Vec<_> = views.iter().filter(|v| v.is_leader()).collect();
        match &leaders[..] {
            [l] if l.member == new.member && l.epoch == new.epoch => Ok(()),
            _ => Err(format!("{views:?}")),
        }
    })
    .await;

    let seen = watcher.stop().await;
    leadership_invariants(&seen).unwrap_or_else(|e| panic!("{e}"));
    let since_resume: Vec<_> = seen
        .iter()
        .filter(|s| s.replica == leader && s.sent >= resumed)
        .collect();
    assert!(
        !since_resume.is_empty(),
        "the resumed replica answered /health"
    );
    let stale: Vec<_> = since_resume
        .iter()
        .filter(|s| s.view.is_leader() && s.view.epoch < new.epoch)
        .collect();
    assert!(
        stale.is_empty(),
        "asked after SIGCONT, the old leader still claimed the lead: {stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_beacon_on_one_sqlite_file_is_refused() {
    let db = TestDb::sqlite().await;
    let target = HitTarget::start().await;
    let dir = db.dir.path();
    let cluster = Cluster::start(dir, 1, &config_text(&db.url, false, &services(&target, 3))).await;
    until(
        "the first beacon writes results",
        Duration::from_secs(15),
        || async {
            let n = cluster.results_written(0).await?;
            if n >= 3 {
                Ok(())
            } else {
                Err(format!("{n} results written"))
            }
        },
    )
    .await;

    let mut second = Replica::launch("second beacon", &dir.join("beacon.toml"), dir);
    let started = Instant::now();
    let status = second
        .exit_within(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("the second beacon still runs after 20 s:\n{}", second.log()));
    let took = started.elapsed();
    eprintln!(
        "the second beacon exited with {status} after {} ms",
        took.as_millis()
    );
    assert!(!status.success(), "it exits non-zero, got {status}");
    assert!(
        took <= Duration::from_secs(10),
        "it exits quickly: {took:?}"
    );
    let log = second.log();
    let file = dir.join("beacon.db").display().to_string();
    assert!(
        log.contains(&file) && log.contains("PostgreSQL"),
        "the refusal names {file} and says to use PostgreSQL:\n{log}"
    );

    // The first one never noticed.
    let (status, _) = cluster
        .client
        .get(cluster.url(0, "/livez"))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .expect("/livez");
    assert_eq!(status, 200);
    let written = cluster.results_written(0).await.expect("results written");
    let since = Instant::now();
    until(
        "the first beacon keeps probing and writing",
        Duration::from_secs(15),
        || async {
            let n = cluster.results_written(0).await?;
            let probed = target.since(since).len();
            if n >= written + 3 && probed >= 3 {
                Ok(())
            } else {
                Err(format!(
                    "{} more results written, {probed} probes",
                    n - written
                ))
            }
        },
    )
    .await;
}

/// Not a PostgreSQL restart (other tests share the server): every
/// connection to this test's database is terminated from outside, which
/// the replicas see the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_postgresql_dropping_every_connection() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    survive_the_database_going(&db.url, db.dir.path(), || async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut conn)
        .await
        .expect("terminate the replicas' connections");
        let _ = conn.close().await;
        let cut = cut.into_iter().filter(|c| *c).count();
        assert!(cut >= 3, "each replica had a connection; {cut} cut");
        format!("{cut} connections cut")
    })
    .await;
}

/// The PostgreSQL server itself stopped and started again under three
/// replicas: a server of the test's own (initdb in a temporary folder, its
/// own port), so the other tests' server is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_a_postgresql_restart() {
    let Some(server) = harness::PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let url = server.url();
    survive_the_database_going(&url, dir.path(), || async {
        server.stop();
        server.start_again();
        "the server stopped (fast) and started again".to_string()
    })
    .await;
}

/// Three replicas on `url`, 30 services and an API in an outage with its
/// automatic incident; then `outage` takes the database away and brings it
/// back. Every replica writes again without a restart, the cluster settles
/// with the same members, and there is still one automatic incident and
/// one `service_down` alert.
async fn survive_the_database_going<F, Fut>(url: &str, dir: &std::path::Path, outage: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    const SERVICES: usize = 30;
    let target = HitTarget::start().await;
    let hook = Webhook::start().await;
    let body = format!(
        "{}[[service]]\nname = \"API\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"800ms\"\n\
         failure_threshold = 2\nsuccess_threshold = 1\n{}",
        services(&target, SERVICES),
        target.url("switch"),
        hook.toml()
    );
    let cluster = Cluster::start(dir, 3, &config_text(url, true, &body)).await;
    let before = cluster.settled(&ALL, FORM).await;
    let up: Vec<(String, &str)> = slugs(SERVICES)
        .into_iter()
        .map(|s| (s, "operational"))
        .chain([("api".to_string(), "operational")])
        .collect();
    cluster
        .summaries_agree(&ALL, &up, Duration::from_secs(15))
        .await;

    // An outage under way, with its incident, when the database goes.
    target.switch.store(500, Ordering::SeqCst);
    let automatic = || pg_count(url, "SELECT COUNT(*) FROM incidents WHERE automatic");
    until(
        "the outage has its automatic incident",
        Duration::from_secs(20),
        || async {
            match automatic().await? {
                1 => Ok(()),
                n => Err(format!("{n} automatic incidents")),
            }
        },
    )
    .await;
    let watcher = Watcher::watch(&cluster);
    let mut written = Vec::new();
    for i in ALL {
        written.push(cluster.results_written(i).await.expect("results written"));
    }
    let stored = pg_count(url, "SELECT COUNT(*) FROM check_results")
        .await
        .expect("count results");

    let what = outage().await;
    let at = Instant::now();

    // Every replica writes again (each probes some of the 31 services),
    // and the results reach the database.
    until(
        "every replica writes results again",
        Duration::from_secs(30),
        || async {
            let mut behind = Vec::new();
            for i in ALL {
                let n = cluster.results_written(i).await?;
                if n < written[i] + 3 {
                    behind.push(format!("replica {i}: {} more", n - written[i]));
                }
            }
            let now = pg_count(url, "SELECT COUNT(*) FROM check_results").await?;
            if now < stored + SERVICES as i64 {
                behind.push(format!("{} more rows stored", now - stored));
            }
            if behind.is_empty() {
                Ok(())
            } else {
                Err(behind.join("; "))
            }
        },
    )
    .await;
    let after = cluster.settled(&ALL, Duration::from_secs(20)).await;
    eprintln!(
        "{what}: writing again and settled within {} ms (epoch {} before, {} after)",
        at.elapsed().as_millis(),
        before.epoch,
        after.epoch
    );
    assert_eq!(after.members, before.members, "nobody left the cluster");

    // Every page catches up with what was written while the database was
    // away (a rebuild the cut made fail is made again at the next write),
    // then there is still one incident and one alert for the one outage.
    until(
        "every replica lists the outage's incident again",
        Duration::from_secs(10),
        || cluster.each_lists_incidents(&ALL, 1),
    )
    .await;
    hold(
        "one automatic incident, one service_down",
        Duration::from_secs(3),
        || async {
            let n = automatic().await?;
            let down = hook.of("service_down").len();
            if n != 1 || down != 1 {
                return Err(format!("{n} automatic incidents, {down} service_down"));
            }
            cluster.each_lists_incidents(&ALL, 1).await
        },
    )
    .await;
    leadership_invariants(&watcher.stop().await).unwrap_or_else(|e| panic!("{e}"));
}

/// Through a transaction-pooling PgBouncer, three replicas whose pools
/// (ten connections each) share three server connections: the cluster
/// forms with one leader, a service's outage is one incident and one alert
/// each way, a killed leader is replaced at a higher epoch, and a backup
/// runs. What needs a session of its own (migrations, the in-use and
/// backup locks, `pg_dump`) goes to `storage.direct_url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_through_a_transaction_pooling_pgbouncer_do_everything_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(bouncer) = harness::PgBouncer::start(3) else {
        return;
    };
    const OTHERS: usize = 5;
    let target = HitTarget::start().await;
    let hook = Webhook::start().await;
    let backups = db.dir.path().join("backups");
    let body = format!(
        "{}[[service]]\nname = \"API\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"800ms\"\n\
         failure_threshold = 2\nsuccess_threshold = 1\n{}\
         [backup]\ntarget = \"file://{}\"\n",
        services(&target, OTHERS),
        target.url("switch"),
        hook.toml(),
        backups.display()
    );
    let config = config_text(&bouncer.url_for(&db.url), true, &body).replacen(
        "[storage]\n",
        &format!("[storage]\ndirect_url = \"{}\"\n", db.url),
        1,
    );
    let mut cluster = Cluster::start(db.dir.path(), 3, &config).await;
    let before = cluster.settled(&ALL, FORM).await;
    once_down_once_up(&cluster, &target, &hook, &db.url, OTHERS).await;

    // The leader killed: a survivor leads, at a higher epoch.
    let leader = before.leader;
    cluster.replicas[leader].kill9();
    let killed = Instant::now();
    let survivors: Vec<usize> = ALL.into_iter().filter(|&i| i != leader).collect();
    cluster
        .new_leader(&survivors, before.epoch, LEASE + 2 * HEARTBEAT + SLACK * 2)
        .await;
    eprintln!(
        "through PgBouncer: a survivor led {} ms after the leader was killed",
        killed.elapsed().as_millis()
    );

    // A backup, taken and verified beside the running replicas.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_beacon"))
        .current_dir(db.dir.path())
        .env_remove("BEACON_STORAGE_URL")
        .args(["backup", "run", "--config"])
        .arg(db.dir.path().join("beacon.toml"))
        .output()
        .expect("beacon backup run");
    assert!(
        out.status.success(),
        "backup run: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing went wrong underneath: no statement was lost between server
    // connections, no replica logged an error of the store.
    for i in survivors {
        let log = cluster.replicas[i].log();
        assert!(
            !log.contains("prepared statement") && !log.contains(" ERROR "),
            "{}: {}",
            cluster.replicas[i].name,
            cluster.replicas[i].tail()
        );
    }
    let pooler = bouncer.log();
    assert!(!pooler.contains("prepared statement"), "{pooler}");
}
