//! Object storage (`[storage] kind = "s3"`): the credentials can be read,
//! the bucket answers them, and a probe object can be written, read back
//! and deleted — what publishing and serving need.

use streamgate_assets::bucket::Key;
use streamgate_assets::{Bucket, BucketConfig};

use super::Finding;

pub fn checks(bucket: Option<&BucketConfig>) -> Vec<Finding> {
    let Some(config) = bucket else {
        return Vec::new(); // local storage: the data dir checks cover it
    };
    let client = match Bucket::connect(config) {
        Ok(client) => client,
        Err(e) => {
            return vec![Finding::fail(
                "storage",
                e.to_string(),
                "set [storage] credentials_file (mode 600) or STREAMGATE_S3_ACCESS_KEY_ID and STREAMGATE_S3_SECRET_ACCESS_KEY",
            )]
        }
    };
    let probe = Key::from(format!("{}.streamgate-doctor", config.prefix));
    let path = std::env::temp_dir().join(format!("streamgate-doctor-{}", std::process::id()));
    let round_trip = std::fs::write(&path, b"doctor")
        .and_then(|()| client.put_file(probe.clone(), &path, "text/plain"))
        .and_then(|()| client.get_file(probe.clone(), &path))
        .and_then(|_| client.delete(probe));
    let _ = std::fs::remove_file(&path);
    vec![match round_trip {
        Ok(()) => Finding::ok(
            "storage",
            format!("bucket {} writable and readable", config.bucket),
        ),
        Err(e) => Finding::fail(
            "storage",
            format!("bucket {}: {e}", config.bucket),
            "check [storage] endpoint, bucket, region and the key's permissions (read, write, delete)",
        ),
    }]
}
