//! `[backup]`: where, when and how long backups are kept, and the S3
//! settings of an S3 target.

use std::path::PathBuf;

use super::problems::Problems;
use crate::config::raw::{RawBackup, RawKeep};
use crate::config::{
    parse_schedule, BackupConfig, BackupTargetUrl, EnvLookup, KeepPolicy, S3Credentials,
};

/// `target_from_env`: ` (from BEACON_BACKUP_TARGET)` when the environment
/// set the target, else empty.
pub fn backup(
    raw: &RawBackup,
    env: EnvLookup<'_>,
    target_from_env: &str,
    problems: &mut Problems,
) -> Option<BackupConfig> {
    let before = problems.mark();
    let target = target(raw.target.as_deref(), target_from_env, problems);
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
    let sdk_checksums = sdk_checksums(raw.checksums.as_deref(), problems);
    let part_size = part_size(raw.part_size_mib, problems);
    let keep = keep(raw.keep.as_ref(), problems);
    if problems.grew_since(before) {
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
        credentials: credentials(env),
    })
}

fn target(
    text: Option<&str>,
    target_from_env: &str,
    problems: &mut Problems,
) -> Option<BackupTargetUrl> {
    match text {
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
    }
}

/// `backup.endpoint`: an http(s) URL of scheme, host and port only, as S3
/// endpoints are. Anything else (a user, a password, a path, a query) is
/// refused without being shown: S3 credentials come from the environment.
fn s3_endpoint(text: &str, problems: &mut Problems) -> Option<String> {
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

fn sdk_checksums(text: Option<&str>, problems: &mut Problems) -> bool {
    match text {
        None | Some("when_supported") => true,
        Some("when_required") => false,
        Some(other) => {
            problems.push(format!(
                "backup: checksums \"{other}\" is not one of when_supported, when_required"
            ));
            true
        }
    }
}

fn part_size(mib: Option<i64>, problems: &mut Problems) -> usize {
    match mib {
        None => BackupConfig::DEFAULT_PART_SIZE,
        Some(n @ 5..=4096) => n as usize * 1024 * 1024,
        Some(n) => {
            problems.push(format!(
                "backup: part_size_mib ({n}) must be between 5 and 4096 (S3's limits)"
            ));
            BackupConfig::DEFAULT_PART_SIZE
        }
    }
}

/// `backup.keep`; left out: [`KeepPolicy::DEFAULT`]. One that keeps
/// nothing is refused.
fn keep(raw: Option<&RawKeep>, problems: &mut Problems) -> KeepPolicy {
    let mut keep = KeepPolicy::default();
    if let Some(k) = raw {
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
    keep
}

/// From `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
/// `AWS_SESSION_TOKEN`); `None`: the AWS SDK's default chain.
fn credentials(env: EnvLookup<'_>) -> Option<S3Credentials> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => Some(S3Credentials {
            access_key_id: key,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
        }),
        _ => None,
    }
}
