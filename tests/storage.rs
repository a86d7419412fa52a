//! Assets in object storage (`[storage] kind = "s3"`) against a real S3
//! server, Garage: publish to the bucket (manifests, then the index, last),
//! origins serving from a local read-through copy with the same validators,
//! single flight, the byte bound, restarts, a dead bucket (503, never 404)
//! and a half-uploaded asset (never served).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{copy_bytes, fetch_every_uri, packaged_asset, wait_for, Engine, Options, Scratch};
use object_store::ObjectStoreExt;
use streamgate_assets::{AssetStore, Bucket, BucketStore};
use streamgate_testkit::garage::Garage;

/// Every object of [`packaged_asset`], by path inside the asset.
const OBJECTS: [&str; 6] = [
    "master.m3u8",
    "manifest.mpd",
    "360p/index.m3u8",
    "360p/init.mp4",
    "360p/0.m4s",
    "360p/1.m4s",
];

/// An origin serving every asset in the bucket (`engine --open`), with an
/// empty copy and `engine_toml` added.
fn origin(garage: &Garage, engine_toml: &str) -> Engine {
    Engine::start_with(
        Options {
            sections_toml: garage.storage_toml(),
            engine_toml: engine_toml.into(),
            env: garage.env(),
            ..Options::default()
        },
        |_| {},
    )
}

/// The writers' view of the bucket, as the job runner has it.
fn bucket_store(garage: &Garage, scratch: &Path) -> BucketStore {
    let bucket = Bucket::connect(&garage.bucket_config(Duration::from_secs(5))).unwrap();
    BucketStore::new(bucket, &scratch.join("bucket-scratch")).unwrap()
}

/// Publishes a [`packaged_asset`] named `name` into the bucket; returns a
/// copy of its files to compare against.
fn publish(store: &BucketStore, scratch: &Path, name: &str, seed: u8) -> std::path::PathBuf {
    let expected = scratch.join("expected").join(name);
    packaged_asset(&expected, seed);
    let incoming = scratch.join("incoming").join(name);
    packaged_asset(&incoming, seed);
    store.import(&incoming, name).unwrap();
    expected
}

#[test]
fn two_origins_serve_one_bucket_with_the_same_validators() {
    let scratch = Scratch::new("storage-two");
    let garage = Garage::start(&scratch.0.join("garage"));
    let expected = scratch.0.join("expected/film");
    packaged_asset(&expected, 1);
    // Origin A is the whole appliance: `asset import` uploads through its
    // control plane.
    let a = Engine::start_with(
        Options {
            open: false,
            sections_toml: garage.storage_toml(),
            env: garage.env(),
            ..Options::default()
        },
        |incoming| packaged_asset(&incoming.join("film"), 1),
    );
    let b = origin(&garage, "");
    a.wait_status("/v/film/master.m3u8", 200);
    assert_eq!(fetch_every_uri(&b, "/v/film/", &expected), 5);
    assert_eq!(fetch_every_uri(&a, "/v/film/", &expected), 5);
    for path in OBJECTS {
        let (from_a, from_b) = (
            a.get(&format!("/v/film/{path}"), ""),
            b.get(&format!("/v/film/{path}"), ""),
        );
        assert_eq!((from_a.status, from_b.status), (200, 200), "{path}");
        let tag = from_b.header("ETag").unwrap().to_string();
        assert_eq!(from_a.header("ETag"), Some(tag.as_str()), "{path}");
        assert_eq!(
            tag,
            streamgate_assets::index::etag_of(&std::fs::read(expected.join(path)).unwrap()),
            "{path}: the tag comes from the content"
        );
        assert_eq!(
            from_a.header("Last-Modified"),
            from_b.header("Last-Modified"),
            "{path}"
        );
        // A CDN revalidating against the other origin gets a 304.
        let revalidated = a.get(
            &format!("/v/film/{path}"),
            &format!("If-None-Match: {tag}\r\n"),
        );
        assert_eq!(revalidated.status, 304, "{path}");
    }
    assert_eq!(
        copy_bytes(&b.scratch.0.join("cache")),
        copy_bytes(&expected),
        "B holds a copy of every object it served"
    );
    assert!(b.metric("streamgate_store_fetches_total{result=\"fetched\"}") >= 6.0);
    // Paths the asset does not have are 404 without a question to the
    // bucket, and hidden names are never served.
    assert_eq!(b.get("/v/film/360p/9.m4s", "").status, 404);
    assert_eq!(b.get("/v/film/.index.json", "").status, 404);
}

#[test]
fn one_fetch_per_object_however_many_ask_and_the_copy_stays_in_its_bound() {
    let scratch = Scratch::new("storage-bound");
    let garage = Garage::start(&scratch.0.join("garage"));
    let store = bucket_store(&garage, &scratch.0);
    let assets: Vec<_> = (0..4u8)
        .map(|n| {
            let name = format!("a{n}");
            (name.clone(), publish(&store, &scratch.0, &name, n * 10))
        })
        .collect();
    // Each asset is about 161 KB: four do not fit in 250 KB.
    let bound = 250_000u64;
    let b = origin(&garage, &format!("cache_dir_max_bytes = {bound}\n"));
    let want = std::fs::read(assets[0].1.join("360p/0.m4s")).unwrap();
    let b = Arc::new(b);
    let askers: Vec<_> = (0..16)
        .map(|_| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || b.get("/v/a0/360p/0.m4s", ""))
        })
        .collect();
    for asker in askers {
        let r = asker.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, want);
    }
    assert_eq!(
        b.metric("streamgate_store_fetches_total{result=\"fetched\"}"),
        1.0,
        "16 requests for one object, one fetch"
    );
    let copy = b.scratch.0.join("cache");
    for (name, expected) in &assets {
        for path in OBJECTS {
            let r = b.get(&format!("/v/{name}/{path}"), "");
            assert_eq!(r.status, 200, "{name}/{path}");
            assert_eq!(r.body, std::fs::read(expected.join(path)).unwrap());
            let held = copy_bytes(&copy);
            assert!(held <= bound, "{held} bytes held, bound {bound}");
        }
    }
    assert!(b.metric("streamgate_store_evictions_total") > 0.0);
}

#[test]
fn a_dead_bucket_is_503_never_404_and_a_half_uploaded_asset_is_never_served() {
    let scratch = Scratch::new("storage-dead");
    let mut garage = Garage::start(&scratch.0.join("garage"));
    let store = bucket_store(&garage, &scratch.0);
    publish(&store, &scratch.0, "whole", 1);
    publish(&store, &scratch.0, "never-asked", 2);
    // Every object of an asset, but the index never went up: a publish cut
    // short.
    let half = scratch.0.join("half");
    packaged_asset(&half, 3);
    for path in OBJECTS {
        store
            .bucket()
            .put_file(
                store.bucket().asset_key(&format!("half/{path}")),
                &half.join(path),
                "application/octet-stream",
            )
            .unwrap();
    }
    let mut b = origin(&garage, "");
    for path in OBJECTS {
        assert_eq!(b.get(&format!("/v/half/{path}"), "").status, 404, "{path}");
    }
    assert_eq!(b.get("/v/whole/360p/0.m4s", "").status, 200);

    garage.stop();
    let cached = b.get("/v/whole/360p/0.m4s", "");
    assert_eq!(cached.status, 200, "what the copy holds keeps being served");
    for path in ["/v/whole/360p/1.m4s", "/v/never-asked/master.m3u8"] {
        let r = b.get(path, "");
        assert_eq!(r.status, 503, "{path}: not held, the bucket is down");
        assert!(r.header("Retry-After").is_some(), "{path}");
        assert_eq!(r.header("Cache-Control"), Some("no-store"), "{path}");
    }
    // The copy survives a restart, and serves with the bucket still down.
    b.kill9_and_restart();
    assert_eq!(b.get("/v/whole/360p/0.m4s", "").body, cached.body);

    garage.resume();
    wait_for("the bucket answers again", Duration::from_secs(20), || {
        b.get("/v/whole/360p/1.m4s", "").status == 200
    });
    assert_eq!(b.get("/v/never-asked/master.m3u8", "").status, 200);
    assert_eq!(b.get("/v/half/master.m3u8", "").status, 404);
}

#[test]
fn an_upload_is_transcoded_into_the_bucket_and_plays_from_another_origin() {
    let scratch = Scratch::new("storage-upload");
    let garage = Garage::start(&scratch.0.join("garage"));
    let a = Engine::start_with(
        Options {
            open: false,
            sections_toml: garage.storage_toml(),
            env: garage.env(),
            engine_toml: "upload_ladder = \"240,144\"\nupload_segment_seconds = 2\njob_preset = \"ultrafast\"\n".into(),
            ..Options::default()
        },
        |_| {},
    );
    let source = common::clip(&scratch.0, "source.mp4", "320x240", 4, true);
    a.upload_whole(&std::fs::read(&source).unwrap(), "source.mp4", "clip");
    wait_for(
        "the job publishes to the bucket",
        Duration::from_secs(120),
        || a.get("/v/clip/master.m3u8", "").status == 200,
    );
    let b = origin(&garage, "");
    for entry in ["master.m3u8", "manifest.mpd"] {
        let url = format!("http://{}/v/clip/{entry}", b.addr);
        common::decodes_cleanly(&url);
        assert_eq!(
            a.get(&format!("/v/clip/{entry}"), "").header("ETag"),
            b.get(&format!("/v/clip/{entry}"), "").header("ETag"),
        );
    }
    // The bucket holds the objects with their media type and cache policy;
    // nothing is left under the engine's own root.
    let store = bucket_store(&garage, &scratch.0);
    let index = store.index("clip").unwrap().unwrap();
    assert!(
        index.get("240p/index.m3u8").is_some(),
        "{:?}",
        index.objects.keys()
    );
    let segment = index
        .objects
        .keys()
        .find(|k| k.starts_with("240p/") && k.ends_with(".m4s"))
        .unwrap()
        .clone();
    for (path, content_type, cache_control) in [
        (
            "master.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=2",
        ),
        (
            "240p/init.mp4",
            "video/mp4",
            "public, max-age=31536000, immutable",
        ),
        (
            segment.as_str(),
            "video/iso.segment",
            "public, max-age=31536000, immutable",
        ),
    ] {
        let (client, key) = (
            store.bucket().store(),
            store.bucket().asset_key(&format!("clip/{path}")),
        );
        let attributes = store
            .bucket()
            .run(async move { client.get(&key).await.map(|got| got.attributes) })
            .unwrap();
        let get = |a: object_store::Attribute| attributes.get(&a).map(|v| v.to_string());
        assert_eq!(
            get(object_store::Attribute::ContentType).as_deref(),
            Some(content_type),
            "{path}"
        );
        assert_eq!(
            get(object_store::Attribute::CacheControl).as_deref(),
            Some(cache_control),
            "{path}"
        );
    }
    assert_eq!(std::fs::read_dir(&a.root).unwrap().count(), 0);
}

/// `streamgate doctor`'s storage finding for a configuration, with `env`.
fn doctor_storage(config: &Path, env: &[(String, String)]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(["doctor", "--json", "--config"])
        .arg(config)
        .env_remove("STREAMGATE_S3_ACCESS_KEY_ID")
        .env_remove("STREAMGATE_S3_SECRET_ACCESS_KEY")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "storage")
        .cloned()
        .unwrap_or_else(|| panic!("no storage finding: {json:#}"))
}

#[test]
fn doctor_checks_the_bucket_round_trip() {
    let scratch = Scratch::new("storage-doctor");
    let mut garage = Garage::start(&scratch.0.join("garage"));
    let config = scratch.0.join("streamgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n{}",
            scratch.0.display(),
            garage.storage_toml()
        ),
    )
    .unwrap();
    let ok = doctor_storage(&config, &garage.env());
    assert_eq!(ok["level"], "ok", "{ok}");

    let no_keys = doctor_storage(&config, &[]);
    assert_eq!(no_keys["level"], "fail", "{no_keys}");
    assert!(
        no_keys["said"].as_str().unwrap().contains("credentials"),
        "{no_keys}"
    );

    let mut wrong = garage.env();
    wrong[1].1 = "0".repeat(64);
    let refused = doctor_storage(&config, &wrong);
    assert_eq!(refused["level"], "fail", "{refused}");

    garage.stop();
    let down = doctor_storage(&config, &garage.env());
    assert_eq!(down["level"], "fail", "{down}");
}

#[test]
fn a_source_the_bucket_could_not_take_is_sent_again() {
    let scratch = Scratch::new("storage-resend");
    let mut garage = Garage::start(&scratch.0.join("garage"));
    let a = Engine::start_with(
        Options {
            open: false,
            sections_toml: garage.storage_toml(),
            env: garage.env(),
            // The ingest sweep (which sends leftovers again) runs every
            // quarter of the expiry.
            engine_toml: "upload_ladder = \"144\"\nupload_segment_seconds = 2\njob_preset = \"ultrafast\"\nupload_expiry = \"8s\"\n".into(),
            ..Options::default()
        },
        |_| {},
    );
    let source = common::clip(&scratch.0, "late.mp4", "320x240", 2, false);
    garage.stop();
    a.upload_whole(&std::fs::read(&source).unwrap(), "late.mp4", "late");
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(a.get("/v/late/master.m3u8", "").status, 200);
    let kept = std::fs::read_dir(a.scratch.0.join("uploads"))
        .unwrap()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "mp4"));
    assert!(kept, "the source stays while it is not queued");
    garage.resume();
    wait_for(
        "the source is sent again and the job runs",
        Duration::from_secs(120),
        || a.get("/v/late/master.m3u8", "").status == 200,
    );
    let left = std::fs::read_dir(a.scratch.0.join("uploads"))
        .unwrap()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "mp4"));
    assert!(!left, "a queued source is removed (the bucket has it)");
}
