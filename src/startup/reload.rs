//! Config changes without a restart. The config file is read again on
//! SIGHUP (`systemctl reload`) and whenever its content changes: its
//! metadata (inode, size, times) is looked at every two seconds, the file
//! read when that moved and every 30 s regardless, and compared by
//! SHA-256, so an edit in place, a new file moved over it and Kubernetes'
//! `..data` symlink swap of a mounted ConfigMap are all seen alike (a watch
//! of file events misses the last, and a modification time alone can lie:
//! the content decides).
//!
//! A new config is validated first. An invalid one is refused: its
//! problems are logged with their places, `/health` warns naming it, and
//! the running config stays in force; beacon never exits on a bad reload.
//! A valid one is sent to the running app (`Running::reload`), which
//! applies what can change live and names what needs a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::config::{self, Config, ConfigSource};
use crate::metrics::Metrics;

/// How often the file's metadata is looked at to see whether it changed.
pub(super) const POLL: Duration = Duration::from_secs(2);

/// The file is read and hashed whole at least every this many polls, even
/// when its metadata says nothing changed (a copy that kept the size and
/// the time, a file system with coarse times).
const READ_EVERY_POLLS: u32 = 15;

/// What a poll compares before reading the file: device, inode (a
/// Kubernetes ConfigMap swaps a symlink: a new inode), size, and the
/// modification and change times to the nanosecond.
fn stamp(meta: &std::fs::Metadata) -> [i64; 7] {
    use std::os::unix::fs::MetadataExt;
    [
        meta.dev() as i64,
        meta.ino() as i64,
        meta.size() as i64,
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    ]
}

pub(super) fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Watches `path` until `stop` turns true, sending each valid new config
/// with its SHA-256. `loaded` is the SHA-256 of the text in force.
pub(super) async fn watch_file(
    path: PathBuf,
    mut loaded: String,
    metrics: Arc<Metrics>,
    updates: mpsc::Sender<(Config, String)>,
    mut stop: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; config changes are still seen in the file");
            None
        }
    };
    // The last text refused, so a bad file is reported once, not every poll.
    let mut refused: Option<String> = None;
    // Reading and hashing the whole file every 2 s cost 12 MB of reads and
    // hashing at 100,000 services: a poll reads it only when its metadata
    // moved, on SIGHUP, and every `READ_EVERY_POLLS` polls.
    let mut seen: Option<[i64; 7]> = None;
    let mut polls_since_read = 0u32;
    loop {
        let asked = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
            _ = stop.wait_for(|s| *s) => return,
        };
        let now = tokio::fs::metadata(&path).await.ok().map(|m| stamp(&m));
        polls_since_read += 1;
        if !asked && now.is_some() && now == seen && polls_since_read < READ_EVERY_POLLS {
            continue;
        }
        seen = now;
        polls_since_read = 0;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) => {
                // A swap in progress, or the file removed: the running config
                // stays, and the next read tries again.
                if asked {
                    tracing::warn!(config = %path.display(), error = %e, "cannot read the config file; the running config stays");
                }
                continue;
            }
        };
        let hash = sha256(&text);
        if hash == loaded || refused.as_deref() == Some(hash.as_str()) {
            if asked {
                metrics
                    .config_reloads
                    .with_label_values(&["unchanged"])
                    .inc();
                tracing::info!(config = %path.display(), "SIGHUP: the config file is unchanged");
            }
            continue;
        }
        match config::from_toml(
            &text,
            ConfigSource::File(path.clone()),
            &config::process_env,
        ) {
            Ok(config) => {
                refused = None;
                loaded = hash.clone();
                if updates.send((config, hash)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let problems = e.problems();
                metrics.config_reloads.with_label_values(&["invalid"]).inc();
                let why = match problems.first() {
                    Some(first) => format!(
                        "{} changed, but the new config is refused ({} problem{}, the first: {first}); the running config stays in force",
                        path.display(),
                        problems.len(),
                        if problems.len() == 1 { "" } else { "s" }
                    ),
                    None => format!(
                        "{} changed, but the new config is refused ({e}); the running config stays in force",
                        path.display()
                    ),
                };
                tracing::error!(config = %path.display(), problems = %problems.join("; "), "{why}");
                *metrics.config.refused.lock() = Some(crate::redact::scrub(&why).into_owned());
                refused = Some(hash);
            }
        }
    }
}

/// What a reload changes in the running app.
pub(super) struct Live {
    pub addr: std::net::SocketAddr,
    pub store: crate::store::Store,
    pub clock: Arc<dyn crate::clock::Clock>,
    pub cluster: Arc<crate::cluster::Cluster>,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<crate::monitor::MonitorStats>,
    pub written: watch::Sender<u64>,
    pub layout: crate::snapshot::SharedLayout,
    pub changed: Arc<tokio::sync::Notify>,
    pub channels: crate::notify::SharedChannels,
    pub inbox: crate::monitor::InboxSlot,
    pub agents: Arc<crate::web::agent::Agents>,
}

impl Live {
    /// A new config refused by the running app: logged, counted, and on
    /// `/health` until a good one is applied.
    pub(super) fn refuse(&self, why: &str) {
        tracing::error!("{why}");
        self.metrics
            .config_reloads
            .with_label_values(&["invalid"])
            .inc();
        *self.metrics.config.refused.lock() = Some(crate::redact::scrub(why).into_owned());
    }
}

/// The settings of `new` that differ from `old` and apply only at a
/// restart (the listener, the store, the monitor's and cluster's tuning,
/// backups, tokens, limits, the page's links): named in the log.
pub(super) fn needing_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, a: String, b: String| {
        if a != b {
            changed.push(name);
        }
    };
    check(
        "server.listen",
        old.server.listen.to_string(),
        new.server.listen.to_string(),
    );
    check(
        "storage",
        format!(
            "{} {:?} {:?}",
            old.storage.url.expose(),
            old.storage.direct_url.as_ref().map(|u| u.expose()),
            old.storage.raw_retention
        ),
        format!(
            "{} {:?} {:?}",
            new.storage.url.expose(),
            new.storage.direct_url.as_ref().map(|u| u.expose()),
            new.storage.raw_retention
        ),
    );
    check(
        "monitor",
        format!("{:?}", old.monitor),
        format!("{:?}", new.monitor),
    );
    check(
        "cluster",
        format!("{:?}", old.cluster),
        format!("{:?}", new.cluster),
    );
    check(
        "subscriptions",
        format!("{:?}", old.subscriptions),
        format!("{:?}", new.subscriptions),
    );
    check(
        "backup",
        format!("{:?}", old.backup),
        format!("{:?}", new.backup),
    );
    check(
        "admin.tokens",
        old.admin.tokens.join("\u{0}"),
        new.admin.tokens.join("\u{0}"),
    );
    check(
        "metrics",
        format!(
            "{:?} {:?} {:?}",
            old.metrics.enabled, old.metrics.token, old.metrics.per_service
        ),
        format!(
            "{:?} {:?} {:?}",
            new.metrics.enabled, new.metrics.token, new.metrics.per_service
        ),
    );
    let site = |c: &Config| {
        let s = &c.server;
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            s.public_url,
            s.logo_url,
            s.home_url,
            s.support_url,
            s.announcement,
            s.time_zone,
            s.watch_self,
            s.limits
        )
    };
    check("server (but its title)", site(old), site(new));
    changed
}
