//! What every target stores and hands back: objects by key, their size and
//! SHA-256 as computed while they streamed, and whose fault a failed read
//! is.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A download in progress: a target writes the object's bytes into it as
/// they come, and it counts and hashes them on the way to the file.
pub struct Download {
    path: PathBuf,
    out: tokio::fs::File,
    hasher: Sha256,
    size: u64,
}

impl Download {
    pub async fn create(path: &Path) -> Result<Download, ReadError> {
        let out = tokio::fs::File::create(path)
            .await
            .map_err(|e| local(path, e))?;
        Ok(Download {
            path: path.to_path_buf(),
            out,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// `Unreachable` when the local file cannot be written: not the
    /// object's fault.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        self.hasher.update(bytes);
        self.out
            .write_all(bytes)
            .await
            .map_err(|e| local(&self.path, e))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Makes the file durable and says what arrived.
    pub async fn finish(mut self) -> Result<Digested, ReadError> {
        self.out.flush().await.map_err(|e| local(&self.path, e))?;
        self.out
            .sync_all()
            .await
            .map_err(|e| local(&self.path, e))?;
        Ok(Digested {
            size: self.size,
            sha256: self.hasher.finalize().into(),
        })
    }
}

fn local(path: &Path, e: std::io::Error) -> ReadError {
    ReadError::Unreachable(anyhow::Error::new(e).context(format!("writing {}", path.display())))
}
