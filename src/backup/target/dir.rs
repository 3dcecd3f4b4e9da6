//! A local folder as a backup target (`file:///var/backups/beacon`): a
//! mounted disk, or a folder another tool ships elsewhere. Objects are
//! written beside their place as `.partial`, checked, fsynced and renamed,
//! so a key holds a whole object or none.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use tokio::io::AsyncReadExt;

use super::object::{digest_file, Digested, Download, Object, ReadError};
use super::Target;

pub struct DirTarget {
    root: PathBuf,
}

impl DirTarget {
    pub fn new(root: PathBuf) -> DirTarget {
        DirTarget { root }
    }
}

impl Target for DirTarget {
    async fn check(&self) -> anyhow::Result<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .with_context(|| format!("creating {}", self.root.display()))
    }

    async fn put_file(&self, key: &str, path: &Path, digest: &Digested) -> anyhow::Result<()> {
        let dest = self.root.join(key);
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

    async fn abort_uploads(&self, key: &str) -> anyhow::Result<()> {
        let partial = self.root.join(key).with_extension("partial");
        match tokio::fs::remove_file(&partial).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", partial.display())),
        }
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let dest = self.root.join(key);
        let tmp = dest.with_extension("partial");
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&tmp, &bytes)
            .await
            .with_context(|| format!("writing {}", tmp.display()))?;
        commit(&tmp, &dest).await
    }

    async fn get_file(&self, key: &str, out: &mut Download) -> Result<(), ReadError> {
        let src = self.root.join(key);
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
                return Ok(());
            }
            out.write(&buf[..n]).await?;
        }
    }

    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
        match tokio::fs::read(self.root.join(key)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // The folder was listed a moment ago: this file alone is
            // unreadable (permissions, a bad sector).
            Err(e) => Err(ReadError::Unreadable(
                anyhow::Error::new(e).context(format!("reading {key}")),
            )),
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<Object>> {
        let root = &self.root;
        let mut out = Vec::new();
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
        Ok(out)
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match tokio::fs::remove_file(self.root.join(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {key}")),
        }
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
