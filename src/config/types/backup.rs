//! `[backup]`: target, schedule, S3 settings and what is kept.

use std::fmt;
use std::path::PathBuf;

/// `[backup]`: where, when and how long backups are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    /// Cron with a seconds field, run inside `beacon serve`; `None`: only
    /// `beacon backup run` (system cron, a Kubernetes CronJob).
    pub schedule: Option<String>,
    pub target: BackupTargetUrl,
    /// S3 only: a custom endpoint (MinIO, Ceph, Garage, R2 …).
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    /// S3 only: `false` sends checksums only when an operation requires
    /// them (R2, Ceph and older MinIO reject the SDK's default ones). beacon
    /// still sends its own SHA-256 of every part and object.
    pub sdk_checksums: bool,
    /// Multipart part size; archives larger than this are uploaded in parts.
    pub part_size: usize,
    /// Where archives are staged; default: the system's temporary folder.
    pub temp_dir: Option<PathBuf>,
    pub keep: KeepPolicy,
    /// From `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`); `None`: the AWS SDK's default chain (profile,
    /// web identity, container or instance credentials).
    pub credentials: Option<S3Credentials>,
}

#[derive(Clone, PartialEq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "S3Credentials {{ access_key_id: {}, secret: hidden }}",
            self.access_key_id
        )
    }
}

impl BackupConfig {
    pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
}

/// `s3://bucket/prefix` or `file:///path` (relative: `file://./data/backups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTargetUrl {
    S3 { bucket: String, prefix: String },
    File(PathBuf),
}

/// As shown in messages and stored with each backup: an S3 target as its
/// bucket only (like any URL, scheme and host), a folder as its path.
impl fmt::Display for BackupTargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupTargetUrl::S3 { bucket, .. } => write!(f, "s3://{bucket}"),
            BackupTargetUrl::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

impl BackupTargetUrl {
    pub fn parse(text: &str) -> Result<BackupTargetUrl, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid {
                return Err(format!(
                    "\"{bucket}\" is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"
                ));
            }
            Ok(BackupTargetUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            })
        } else if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() {
                return Err("names no folder (write file:///var/backups/beacon)".into());
            }
            Ok(BackupTargetUrl::File(PathBuf::from(path)))
        } else {
            Err("must start with s3:// or file://".into())
        }
    }
}

/// The cron dialect of the schedule: six or seven fields, seconds first,
/// as tokio-cron-scheduler reads it.
pub fn parse_schedule(text: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(text.trim())
        .map_err(|e| format!("\"{text}\" is not a cron schedule with a seconds field, like \"0 0 */6 * * *\" ({e})"))
}

/// How many backups of each age `backup.keep` keeps (`backup::rotation`
/// plans by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl KeepPolicy {
    pub const DEFAULT: KeepPolicy = KeepPolicy {
        last: 4,
        hourly: 0,
        daily: 7,
        weekly: 4,
        monthly: 6,
        yearly: 0,
    };

    /// A policy that keeps nothing is refused by config validation.
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}
