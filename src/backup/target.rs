//! Where backups live: one [`BackupTarget`] over an S3-compatible bucket
//! (aws-sdk-s3) or a local folder, chosen by the target URL's scheme.
//!
//! Keys are relative to the target (`2026/03/<id>.sqlite.gz`); the S3
//! prefix or the folder is added here. Everything streams: archives go up
//! from a file (in parts above `part_size`, each part with its SHA-256 for
//! the store to check) and come down into a file, so memory does not grow
//! with the database.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{BackupConfig, BackupTargetUrl};

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

/// A file's size and SHA-256, as computed while it streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digested {
    pub size: u64,
    pub sha256: [u8; 32],
}

impl Digested {
    pub fn hex(&self) -> String {
        hex(&self.sha256)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// SHA-256 and size of a file, read in 1 MiB chunks.
pub async fn digest_file(path: &Path) -> anyhow::Result<Digested> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Digested {
        size,
        sha256: hasher.finalize().into(),
    })
}

pub enum BackupTarget {
    File { root: PathBuf },
    S3(S3Target),
}

/// Why one object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The target did not answer (network, endpoint, a server error): it
    /// says nothing about the object.
    #[error("{0:#}")]
    Unreachable(anyhow::Error),
    /// The target answered, and this object cannot be used: damaged bytes,
    /// not a manifest, or refused by the store on its own.
    #[error("{0:#}")]
    Unreadable(anyhow::Error),
}

pub struct S3Target {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    part_size: usize,
    /// Ask the store for the SHA-256 it recorded at upload (off with
    /// `checksums = "when_required"`, for stores that reject the header).
    checksums: bool,
}

impl BackupTarget {
    pub async fn open(config: &BackupConfig) -> anyhow::Result<BackupTarget> {
        match &config.target {
            BackupTargetUrl::File(root) => Ok(BackupTarget::File { root: root.clone() }),
            BackupTargetUrl::S3 { bucket, prefix } => {
                use aws_sdk_s3::config::{
                    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
                };
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(config.region.clone()));
                if let Some(c) = &config.credentials {
                    loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                        c.access_key_id.clone(),
                        c.secret_access_key.clone(),
                        c.session_token.clone(),
                        None,
                        "environment",
                    ));
                }
                let shared = loader.load().await;
                let mut builder =
                    aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.endpoint_url(endpoint);
                }
                if !config.sdk_checksums {
                    builder = builder
                        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                }
                Ok(BackupTarget::S3(S3Target {
                    client: aws_sdk_s3::Client::from_conf(builder.build()),
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    part_size: config.part_size,
                    checksums: config.sdk_checksums,
                }))
            }
        }
    }

    /// Checks that the target is there and answers: the bucket exists and
    /// the credentials are accepted, or the folder can be created.
    pub async fn check(&self) -> anyhow::Result<()> {
        match self {
            BackupTarget::File { root } => tokio::fs::create_dir_all(root)
                .await
                .with_context(|| format!("creating {}", root.display())),
            BackupTarget::S3(s3) => {
                s3.client
                    .head_bucket()
                    .bucket(&s3.bucket)
                    .send()
                    .await
                    .map_err(|e| {
                        let missing = e.as_service_error().is_some_and(|s| s.is_not_found());
                        if missing {
                            anyhow!("bucket \"{}\" does not exist", s3.bucket)
                        } else {
                            anyhow!("bucket \"{}\": {}", s3.bucket, DisplayErrorContext(e))
                        }
                    })?;
                Ok(())
            }
        }
    }

    /// Uploads `path` as `key`; `digest` is its SHA-256, sent for the store
    /// to check. The object appears whole or not at all.
    pub async fn put_file(&self, key: &str, path: &Path, digest: &Digested) -> anyhow::Result<()> {
        match self {
            BackupTarget::File { root } => {
                let dest = root.join(key);
                let tmp = dest.with_extension("partial");
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                tokio::fs::copy(path, &tmp)
                    .await
                    .with_context(|| format!("copying to {}", tmp.display()))?;
                let copied = digest_file(&tmp).await?;
                if copied != *digest {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(anyhow!(
                        "the copy at {} does not match its SHA-256",
                        tmp.display()
                    ));
                }
                commit(&tmp, &dest).await
            }
            BackupTarget::S3(s3) => s3.put_file(key, path, digest).await,
        }
    }

    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        match self {
            BackupTarget::File { root } => {
                let dest = root.join(key);
                let tmp = dest.with_extension("partial");
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                tokio::fs::write(&tmp, &bytes)
                    .await
                    .with_context(|| format!("writing {}", tmp.display()))?;
                commit(&tmp, &dest).await
            }
            BackupTarget::S3(s3) => {
                let sha: [u8; 32] = Sha256::digest(&bytes).into();
                s3.client
                    .put_object()
                    .bucket(&s3.bucket)
                    .key(s3.full(key))
                    .checksum_sha256(b64(&sha))
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .map_err(|e| anyhow!("{}", DisplayErrorContext(e)))?;
                Ok(())
            }
        }
    }

    /// Downloads `key` into `dest`, returning what arrived. `Unreadable`:
    /// the object is missing or refused on its own; `Unreachable`: the
    /// target did not answer, or `dest` could not be written.
    pub async fn get_file(&self, key: &str, dest: &Path) -> Result<Digested, ReadError> {
        let local = |e: std::io::Error| {
            ReadError::Unreachable(
                anyhow::Error::new(e).context(format!("writing {}", dest.display())),
            )
        };
        let mut out = tokio::fs::File::create(dest).await.map_err(local)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        match self {
            BackupTarget::File { root } => {
                let src = root.join(key);
                let mut file = tokio::fs::File::open(&src).await.map_err(|e| {
                    ReadError::Unreadable(
                        anyhow::Error::new(e).context(format!("opening {}", src.display())),
                    )
                })?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).await.map_err(|e| {
                        ReadError::Unreadable(
                            anyhow::Error::new(e).context(format!("reading {}", src.display())),
                        )
                    })?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n]).await.map_err(local)?;
                    size += n as u64;
                }
            }
            BackupTarget::S3(s3) => {
                // The SHA-256 computed here is checked against the manifest by
                // the caller, naming both values; the SDK's own check would
                // only say "streaming error".
                let object = s3
                    .client
                    .get_object()
                    .bucket(&s3.bucket)
                    .key(s3.full(key))
                    .customize()
                    .config_override(
                        aws_sdk_s3::config::Builder::default().response_checksum_validation(
                            aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                        ),
                    )
                    .send()
                    .await
                    .map_err(|e| classify(key, e))?;
                let mut body = object.body;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| {
                        ReadError::Unreachable(
                            anyhow::Error::new(e).context(format!("reading {key}")),
                        )
                    })?;
                    hasher.update(&chunk);
                    out.write_all(&chunk).await.map_err(local)?;
                    size += chunk.len() as u64;
                }
            }
        }
        out.flush().await.map_err(local)?;
        out.sync_all().await.map_err(local)?;
        Ok(Digested {
            size,
            sha256: hasher.finalize().into(),
        })
    }

    /// A small object (a manifest) in memory; `None` if there is none.
    ///
    /// The error says whose fault it is: the target's (it did not answer)
    /// or this one object's (its bytes do not match the SHA-256 the store
    /// recorded at upload, or the store refuses this object alone).
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
        match self {
            BackupTarget::File { root } => match tokio::fs::read(root.join(key)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                // The folder was listed a moment ago: this file alone is
                // unreadable (permissions, a bad sector).
                Err(e) => Err(ReadError::Unreadable(
                    anyhow::Error::new(e).context(format!("reading {key}")),
                )),
            },
            BackupTarget::S3(s3) => s3.get_small(key).await,
        }
    }

    /// Every object, keys relative to the target, sorted.
    pub async fn list(&self) -> anyhow::Result<Vec<Object>> {
        let mut out = Vec::new();
        match self {
            BackupTarget::File { root } => {
                if tokio::fs::metadata(root).await.is_err() {
                    return Ok(out);
                }
                let mut pending = vec![root.clone()];
                while let Some(dir) = pending.pop() {
                    let mut entries = tokio::fs::read_dir(&dir)
                        .await
                        .with_context(|| format!("listing {}", dir.display()))?;
                    while let Some(entry) = entries.next_entry().await? {
                        let meta = entry.metadata().await?;
                        if meta.is_dir() {
                            pending.push(entry.path());
                        } else if let Ok(rel) = entry.path().strip_prefix(root) {
                            let key = rel.to_string_lossy().replace('\\', "/");
                            if !key.ends_with(".partial") {
                                out.push(Object {
                                    key,
                                    size: meta.len(),
                                });
                            }
                        }
                    }
                }
            }
            BackupTarget::S3(s3) => {
                let prefix = if s3.prefix.is_empty() {
                    String::new()
                } else {
                    format!("{}/", s3.prefix)
                };
                let mut token = None;
                loop {
                    let page = s3
                        .client
                        .list_objects_v2()
                        .bucket(&s3.bucket)
                        .prefix(&prefix)
                        .set_continuation_token(token.take())
                        .send()
                        .await
                        .map_err(|e| anyhow!("{}", DisplayErrorContext(e)))?;
                    for o in page.contents() {
                        if let Some(key) = o.key().and_then(|k| k.strip_prefix(&prefix)) {
                            out.push(Object {
                                key: key.to_string(),
                                size: o.size().unwrap_or(0).max(0) as u64,
                            });
                        }
                    }
                    match page.next_continuation_token() {
                        Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                        _ => break,
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self {
            BackupTarget::File { root } => match tokio::fs::remove_file(root.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).with_context(|| format!("deleting {key}")),
            },
            BackupTarget::S3(s3) => {
                s3.client
                    .delete_object()
                    .bucket(&s3.bucket)
                    .key(s3.full(key))
                    .send()
                    .await
                    .map_err(|e| anyhow!("{}", DisplayErrorContext(e)))?;
                Ok(())
            }
        }
    }
}

/// A refused GET: a 4xx other than a timeout or throttling, after the
/// listing worked with the same credentials, is this object's problem
/// (its encryption key, its storage class); anything else is the store's.
fn classify(
    key: &str,
    e: aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::get_object::GetObjectError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
) -> ReadError {
    let status = match &e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    let text = anyhow!("reading {key}: {}", DisplayErrorContext(&e));
    match status {
        Some(code) if (400..500).contains(&code) && code != 408 && code != 429 => {
            ReadError::Unreadable(text)
        }
        _ => ReadError::Unreachable(text),
    }
}

/// Renames a finished temporary file into place and makes it durable.
async fn commit(tmp: &Path, dest: &Path) -> anyhow::Result<()> {
    let file = tokio::fs::OpenOptions::new().read(true).open(tmp).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(tmp, dest)
        .await
        .with_context(|| format!("renaming into {}", dest.display()))?;
    if let Some(parent) = dest.parent() {
        if let Ok(dir) = tokio::fs::File::open(parent).await {
            let _ = dir.sync_all().await;
        }
    }
    Ok(())
}

impl S3Target {
    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// GET of a small object, its SHA-256 checked here against the one the
    /// store recorded at upload (when the store gives it), so that damaged
    /// bytes are told apart from a store that does not answer: the SDK's
    /// own check would fail the read with an anonymous "streaming error".
    async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
        use aws_sdk_s3::config::ResponseChecksumValidation;
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default()
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired),
            );
        if self.checksums {
            request = request.mutate_request(|r| {
                r.headers_mut().insert("x-amz-checksum-mode", "ENABLED");
            });
        }
        let object = match request.send().await {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify(key, e)),
        };
        let recorded = object.checksum_sha256().map(str::to_string);
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| ReadError::Unreachable(anyhow!("reading {key}: {e}")))?
            .into_bytes()
            .to_vec();
        // "<base64>-<parts>" is a checksum of part checksums, not of the
        // object; beacon uploads manifests whole.
        if let Some(recorded) = recorded.filter(|r| !r.contains('-')) {
            let got = b64(&Sha256::digest(&bytes));
            if got != recorded {
                return Err(ReadError::Unreadable(anyhow!(
                    "{key} is damaged: its {} bytes have SHA-256 {got} (base64), the store recorded {recorded} at upload",
                    bytes.len()
                )));
            }
        }
        Ok(Some(bytes))
    }

    async fn put_file(&self, key: &str, path: &Path, digest: &Digested) -> anyhow::Result<()> {
        let full = self.full(key);
        if digest.size <= self.part_size as u64 {
            let body = ByteStream::from_path(path)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .content_length(digest.size as i64)
                .checksum_sha256(b64(&digest.sha256))
                .body(body)
                .send()
                .await
                .map_err(|e| anyhow!("{}", DisplayErrorContext(e)))?;
            return Ok(());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| anyhow!("starting a multipart upload: {}", DisplayErrorContext(e)))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| anyhow!("the store gave no multipart upload id"))?
            .to_string();
        match self.upload_parts(&full, &upload_id, path).await {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "completing the multipart upload: {}",
                            DisplayErrorContext(e)
                        )
                    })?;
                Ok(())
            }
            Err(e) => {
                // Leave no half upload behind (it would cost storage).
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    /// Reads one part at a time (memory: one part), each sent with its
    /// SHA-256.
    async fn upload_parts(
        &self,
        full: &str,
        upload_id: &str,
        path: &Path,
    ) -> anyhow::Result<Vec<CompletedPart>> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut parts = Vec::new();
        let mut number = 1;
        loop {
            let mut buf = Vec::with_capacity(self.part_size);
            (&mut file)
                .take(self.part_size as u64)
                .read_to_end(&mut buf)
                .await?;
            if buf.is_empty() {
                break;
            }
            let sha: [u8; 32] = Sha256::digest(&buf).into();
            let sha = b64(&sha);
            let answer = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_sha256(&sha)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| anyhow!("uploading part {number}: {}", DisplayErrorContext(e)))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(answer.e_tag().map(str::to_string))
                    .checksum_sha256(sha)
                    .build(),
            );
            number += 1;
        }
        Ok(parts)
    }
}
