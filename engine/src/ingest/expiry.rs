//! The tus `expiration` extension: an unfinished upload lives for
//! `upload_expiry` after its last accepted chunk. Past that, a request for it
//! answers 410 and a sweeper thread removes its bytes and its `uploading`
//! asset, so abandoned uploads do not fill the disk or the asset list.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Ingest;
use crate::telemetry;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Upload-Expires` value for an expiry stamp.
pub fn http_date(expires: u64) -> String {
    streamgate_net::conditional::http_date(UNIX_EPOCH + Duration::from_secs(expires))
}

/// The expiry stamp for an upload that made progress now.
pub fn from_now(ingest: &Ingest) -> u64 {
    unix_now() + ingest.config.expiry.as_secs().max(1)
}

/// Starts the sweeper. It looks often enough that an upload outlives its
/// expiry by at most a quarter of it (a minute at most).
pub fn start_sweeper(ingest: &Arc<Ingest>) -> std::io::Result<()> {
    let every = (ingest.config.expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let ingest = Arc::clone(ingest);
    std::thread::Builder::new()
        .name("sg-ingest-sweep".into())
        .spawn(move || loop {
            sweep(&ingest);
            std::thread::sleep(every);
        })?;
    Ok(())
}

/// One pass over the upload directory.
fn sweep(ingest: &Ingest) {
    let ids = match ingest.store.ids() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "ingest sweep");
            return;
        }
    };
    let now = unix_now();
    for id in ids {
        let Some(mut upload) = ingest.store.load(&id) else {
            continue;
        };
        if upload.complete {
            resend_source(ingest, &id, &upload);
            continue;
        }
        if upload.expires == 0 {
            // Stamped from now on: an old state file gets the full period.
            upload.expires = from_now(ingest);
            let _ = ingest.store.save(&id, &upload);
        } else if upload.expired(now) {
            // Busy means a request holds it; the next pass looks again. The
            // state is read again under the claim: a PATCH that just ended
            // has pushed the expiry forward.
            ingest.claimed(&id, || {
                let Some(upload) = ingest.store.load(&id).filter(|u| u.expired(now)) else {
                    return;
                };
                tracing::info!(
                    upload = id,
                    asset = upload.asset,
                    offset = upload.offset,
                    length = upload.length,
                    "ingest: an abandoned upload expired; removed"
                );
                ingest.discard(&id, &upload);
                telemetry::upload("expired");
            });
        }
    }
}

/// A completed upload whose source is still here was never queued (shared
/// queue: the bucket or the control plane was down, or the engine stopped
/// first): queued again. The asset is queued again too, in case a failure
/// was reported meanwhile.
fn resend_source(ingest: &Ingest, id: &str, upload: &super::store::Upload) {
    if !ingest.jobs.retries_leftovers() {
        return;
    }
    let source = ingest.store.source_path(id, upload);
    if !source.is_file() {
        return;
    }
    tracing::info!(
        asset = upload.asset,
        "ingest: queueing a finished upload that was not queued yet"
    );
    if let Err(e) = ingest.queue(&source, upload) {
        tracing::warn!(asset = upload.asset, error = %e, "ingest: queueing again");
    }
}
