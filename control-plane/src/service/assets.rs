//! Asset records: create, import, delete (files through the asset store), status, gating.

use super::*;

/// What deleting an asset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The record and the files under this node's assets root.
    WithFiles,
    /// The record only: this node holds no files for it (a split
    /// deployment); engines remove theirs on their next poll.
    RecordOnly,
}

impl Service {
    /// Every asset.
    pub async fn assets(&self) -> Result<Vec<Asset>, ApiError> {
        Ok(self.store.assets().await?)
    }

    /// One asset.
    pub async fn asset(&self, id: &str) -> Result<Asset, ApiError> {
        self.store
            .asset(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no asset {id:?}")))
    }

    /// Registers an asset (an empty id picks one).
    pub async fn create_asset(
        &self,
        id: &str,
        title: &str,
        status: AssetStatus,
    ) -> Result<Asset, ApiError> {
        let id = if id.is_empty() {
            random_asset_id(12)
        } else {
            id.to_string()
        };
        if !is_asset_id(&id) {
            return Err(ApiError::malformed("asset ids are [A-Za-z0-9_-]{1,64}"));
        }
        if !self
            .store
            .insert_asset(&id, title, status, unix_now())
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::AssetExists,
                format!("asset {id:?} already exists"),
            ));
        }
        self.asset(&id).await
    }

    /// Registers an already packaged directory and moves it under the root.
    pub async fn import_asset(&self, path: &str, id: &str, title: &str) -> Result<Asset, ApiError> {
        let source = PathBuf::from(path);
        if !source.join("master.m3u8").is_file() && !source.join("manifest.mpd").is_file() {
            return Err(ApiError::malformed(format!(
                "{path} is not a packaged asset (no master.m3u8 or manifest.mpd)"
            )));
        }
        let id = if id.is_empty() {
            source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            id.to_string()
        };
        if !is_asset_id(&id) {
            return Err(ApiError::malformed(format!(
                "{id:?} is not an asset id; pass --id"
            )));
        }
        let target = self.config().assets_root.join(&id);
        if self.bucket.is_none() && target.exists() {
            return Err(ApiError::new(
                ErrorCode::AssetExists,
                format!("{} already exists", target.display()),
            ));
        }
        let title = if title.is_empty() { id.as_str() } else { title };
        if !self
            .store
            .insert_asset(&id, title, AssetStatus::Ready, unix_now())
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::AssetExists,
                format!("asset {id:?} already exists"),
            ));
        }
        let imported = match &self.bucket {
            Some(bucket) => {
                let (bucket, source, id) = (Arc::clone(bucket), source.clone(), id.clone());
                tokio::task::spawn_blocking(move || bucket.import(&source, &id))
                    .await
                    .unwrap_or_else(|e| Err(AssetError::io("uploading", std::io::Error::other(e))))
            }
            None => LocalStore::create(&self.config().assets_root)
                .map_err(|e| AssetError::io("opening the assets root", e))
                .and_then(|store| store.import(&source, &id)),
        };
        if imported.is_ok() {
            self.record_duration(&id).await;
        }
        if let Err(e) = imported {
            // Never published anywhere: no engine has files to remove.
            let _ = self.store.delete_asset(&id, None).await;
            return Err(match e {
                AssetError::Exists(path) => ApiError::new(
                    ErrorCode::AssetExists,
                    format!("{} already exists", path.display()),
                ),
                e => ApiError::internal(format!("importing {path}: {e}")),
            });
        }
        self.asset(&id).await
    }

    /// Removes an asset: metadata first (the engine stops serving it within
    /// a second), then its files.
    pub async fn delete_asset(&self, id: &str) -> Result<Deleted, ApiError> {
        if !is_asset_id(id) || !self.store.delete_asset(id, Some(unix_now())).await? {
            return Err(ApiError::not_found(format!("no asset {id:?}")));
        }
        if let Some(bucket) = &self.bucket {
            // From the bucket: each engine drops its copy on its next poll.
            let (bucket, name) = (Arc::clone(bucket), id.to_string());
            let removed = tokio::task::spawn_blocking(move || bucket.remove(&name))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::internal(e.to_string()))?;
            return Ok(if removed {
                Deleted::WithFiles
            } else {
                Deleted::RecordOnly
            });
        }
        let root = &self.config().assets_root;
        let removed = match LocalStore::open(root) {
            Ok(store) => store
                .remove(id)
                .map_err(|e| ApiError::internal(e.to_string()))?,
            Err(_) => false, // no assets root on this node
        };
        // Nothing here: a split deployment, where the files are on the
        // engines; each removes them when its next poll reports the deletion.
        Ok(if removed {
            Deleted::WithFiles
        } else {
            Deleted::RecordOnly
        })
    }

    /// Sets status and progress (job runner, ingest).
    pub async fn update_status(
        &self,
        id: &str,
        status: AssetStatus,
        progress: u32,
        error: &str,
    ) -> Result<Asset, ApiError> {
        if !self
            .store
            .update_status(id, status, progress, error, unix_now())
            .await?
        {
            return Err(ApiError::not_found(format!("no asset {id:?}")));
        }
        if status == AssetStatus::Ready {
            self.record_duration(id).await;
        }
        self.asset(id).await
    }

    /// Reads how long a ready asset plays from its MPD under this node's
    /// root and stores it (a split deployment's control plane, which holds
    /// no files, leaves it unknown).
    async fn record_duration(&self, id: &str) {
        let xml = match &self.bucket {
            Some(bucket) => {
                let (bucket, relative) = (Arc::clone(bucket), format!("{id}/manifest.mpd"));
                match tokio::task::spawn_blocking(move || bucket.read(&relative)).await {
                    Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => return,
                }
            }
            None => {
                let mpd = self.config().assets_root.join(id).join("manifest.mpd");
                let Ok(xml) = std::fs::read_to_string(&mpd) else {
                    return;
                };
                xml
            }
        };
        let duration = match dash_mpd_core::parse(&xml) {
            Ok(parsed) => parsed.mediaPresentationDuration,
            Err(e) => {
                tracing::warn!(asset = id, error = %e, "its MPD does not parse: duration unknown");
                None
            }
        };
        if let Some(d) = duration {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            if let Err(e) = self.store.set_duration(id, ms).await {
                tracing::warn!(asset = id, error = %e, "recording its duration");
            }
        }
    }

    /// Replaces an asset's rules; empty opens it.
    pub async fn set_gate(&self, id: &str, rules: &[GateRule]) -> Result<Asset, ApiError> {
        for rule in rules {
            if rule.chain_id == 0 {
                return Err(ApiError::malformed("every rule needs a chain id"));
            }
            if !self.config().chains.contains_key(&rule.chain_id) {
                // Allowed (the operator may add the chain later), but the
                // asset stays closed until then: say so now.
                tracing::warn!(
                    asset = id,
                    chain = rule.chain_id,
                    "asset gated on a chain with no [chains.N] rpc configured: closed to every viewer"
                );
            }
        }
        if !self.store.set_rules(id, rules, unix_now()).await? {
            return Err(ApiError::not_found(format!("no asset {id:?}")));
        }
        self.asset(id).await
    }
}
