//! An S3-compatible bucket as a backup target (`s3://bucket/prefix`), over
//! aws-sdk-s3: AWS, MinIO, Garage, R2, s3s-fs in the tests.
//!
//! Archives go up from a file, in parts above `part_size` (memory: one
//! part), each with its SHA-256 for the store to check; they come down as
//! a stream. A failed read is told apart as the store's fault or the
//! object's ([`classify`]).

use std::path::Path;

use anyhow::{anyhow, Context};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::object::{Digested, Download, Object, ReadError};
use super::Target;
use crate::config::BackupConfig;

pub struct S3Target {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    part_size: usize,
    /// Ask the store for the SHA-256 it recorded at upload (off with
    /// `checksums = "when_required"`, for stores that reject the header).
    checksums: bool,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl S3Target {
    /// A client for `bucket` with `[backup]`'s region, credentials,
    /// endpoint and checksum settings; nothing is sent yet.
    pub async fn open(config: &BackupConfig, bucket: &str, prefix: &str) -> S3Target {
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
        S3Target {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            part_size: config.part_size,
            checksums: config.sdk_checksums,
        }
    }

    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
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

impl Target for S3Target {
    async fn check(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| {
                let missing = e.as_service_error().is_some_and(|s| s.is_not_found());
                if missing {
                    anyhow!("bucket \"{}\" does not exist", self.bucket)
                } else {
                    anyhow!("bucket \"{}\": {}", self.bucket, DisplayErrorContext(e))
                }
            })?;
        Ok(())
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

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .checksum_sha256(b64(&sha))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| anyhow!("{}", DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn get_file(&self, key: &str, out: &mut Download) -> Result<(), ReadError> {
        // The SHA-256 computed on the way is checked against the manifest
        // by the caller, naming both values; the SDK's own check would
        // only say "streaming error".
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
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
                ReadError::Unreachable(anyhow::Error::new(e).context(format!("reading {key}")))
            })?;
            out.write(&chunk).await?;
        }
        Ok(())
    }

    /// GET of a small object, its SHA-256 checked here against the one the
    /// store recorded at upload (when the store gives it), so that damaged
    /// bytes are told apart from a store that does not answer: the SDK's
    /// own check would fail the read with an anonymous "streaming error".
    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
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

    async fn list(&self) -> anyhow::Result<Vec<Object>> {
        let mut out = Vec::new();
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
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
                _ => return Ok(out),
            }
        }
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| anyhow!("{}", DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn abort_uploads(&self, key: &str) -> anyhow::Result<()> {
        let full = self.full(key);
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&full)
            .send()
            .await
            .map_err(|e| anyhow!("listing unfinished uploads: {}", DisplayErrorContext(e)))?;
        for upload in listed.uploads() {
            let (Some(k), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
                continue;
            };
            if k != full {
                continue;
            }
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(k)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| {
                    anyhow!("aborting an unfinished upload: {}", DisplayErrorContext(e))
                })?;
        }
        Ok(())
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
