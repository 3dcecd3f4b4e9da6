//! Where backups live: one [`BackupTarget`] over the targets of this
//! folder, one file each (a local folder in `dir.rs`, an S3-compatible
//! bucket in `s3.rs`), chosen by the target URL's scheme.
//!
//! Keys are relative to the target (`2026/03/<id>.sqlite.gz`); the S3
//! prefix or the folder is added by the target. Everything streams:
//! archives go up from a file and come down into a file, so memory does
//! not grow with the database.
//!
//! Adding a target is: a file here implementing [`Target`], its variant in
//! [`BackupTarget`] with one arm in [`BackupTarget::open`] and one in
//! `each!`, and its URL scheme in `config::BackupTargetUrl`.

mod dir;
mod object;
mod s3;

use std::path::Path;

pub use dir::DirTarget;
pub use object::{digest_file, hex, Digested, Object, ReadError};
pub use s3::S3Target;

use crate::config::{BackupConfig, BackupTargetUrl};
use object::Download;

/// What every target does. Errors are `anyhow` with the target's own
/// words, except reads, which say whose fault they are ([`ReadError`]).
trait Target {
    /// Checks that the target is there and answers: the bucket exists and
    /// the credentials are accepted, or the folder can be created.
    async fn check(&self) -> anyhow::Result<()>;

    /// Uploads `path` as `key`; `digest` is its SHA-256, for the target to
    /// check. The object appears whole or not at all.
    async fn put_file(&self, key: &str, path: &Path, digest: &Digested) -> anyhow::Result<()>;

    /// A small object (a manifest) from memory, whole or not at all.
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()>;

    /// Streams `key` into `out`. `Unreadable`: the object is missing or
    /// refused on its own; `Unreachable`: the target did not answer.
    async fn get_file(&self, key: &str, out: &mut Download) -> Result<(), ReadError>;

    /// A small object in memory; `None` if there is none.
    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, ReadError>;

    /// Every object, keys relative to the target, in any order.
    async fn list(&self) -> anyhow::Result<Vec<Object>>;

    /// Removes `key`; a key already gone is not an error.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;

    /// Removes what an upload of `key` cut off half-way left behind (a
    /// partial file, an unfinished multipart upload), so nothing of it is
    /// listed or kept.
    async fn abort_uploads(&self, key: &str) -> anyhow::Result<()>;
}

pub enum BackupTarget {
    File(DirTarget),
    S3(S3Target),
}

/// Runs `$body` with `$t` bound to whichever target `$self` is.
macro_rules! each {
    ($self:expr, $t:ident => $body:expr) => {
        match $self {
            BackupTarget::File($t) => $body,
            BackupTarget::S3($t) => $body,
        }
    };
}

impl BackupTarget {
    pub async fn open(config: &BackupConfig) -> anyhow::Result<BackupTarget> {
        Ok(match &config.target {
            BackupTargetUrl::File(root) => BackupTarget::File(DirTarget::new(root.clone())),
            BackupTargetUrl::S3 { bucket, prefix } => {
                BackupTarget::S3(S3Target::open(config, bucket, prefix).await)
            }
        })
    }

    /// Checks that the target is there and answers: the bucket exists and
    /// the credentials are accepted, or the folder can be created.
    pub async fn check(&self) -> anyhow::Result<()> {
        each!(self, t => t.check().await)
    }

    /// Uploads `path` as `key`; `digest` is its SHA-256, sent for the store
    /// to check. The object appears whole or not at all.
    pub async fn put_file(&self, key: &str, path: &Path, digest: &Digested) -> anyhow::Result<()> {
        each!(self, t => t.put_file(key, path, digest).await)
    }

    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        each!(self, t => t.put_bytes(key, bytes).await)
    }

    /// Downloads `key` into `dest`, returning what arrived. `Unreadable`:
    /// the object is missing or refused on its own; `Unreachable`: the
    /// target did not answer, or `dest` could not be written.
    pub async fn get_file(&self, key: &str, dest: &Path) -> Result<Digested, ReadError> {
        let mut out = Download::create(dest).await?;
        each!(self, t => t.get_file(key, &mut out).await)?;
        out.finish().await
    }

    /// A small object (a manifest) in memory; `None` if there is none.
    ///
    /// The error says whose fault it is: the target's (it did not answer)
    /// or this one object's (its bytes do not match the SHA-256 the store
    /// recorded at upload, or the store refuses this object alone).
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
        each!(self, t => t.get_bytes(key).await)
    }

    /// Every object, keys relative to the target, sorted.
    pub async fn list(&self) -> anyhow::Result<Vec<Object>> {
        let mut out = each!(self, t => t.list().await)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        each!(self, t => t.delete(key).await)
    }

    /// What an upload of `key` cut off half-way left behind, removed.
    pub async fn abort_uploads(&self, key: &str) -> anyhow::Result<()> {
        each!(self, t => t.abort_uploads(key).await)
    }
}
