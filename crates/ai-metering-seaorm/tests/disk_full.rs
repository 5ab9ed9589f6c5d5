//! A SQLite file on a filesystem that fills up: writes fail while it is full, and once it has
//! room again every write the store reports as done is durable (seen by another
//! connection). Before the writer replaced its connection after a failed write, the writes
//! after the first failure went into a transaction that never committed.
//!
//! It needs a small tmpfs, so it mounts one: as root (CI runs as root); elsewhere it says it
//! did not run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use ai_metering_core::store::{CreditStore, ReportStore, UsageFilter, UsageStore};
use ai_metering_core::{Billable, Currency, Money};
use ai_metering_seaorm::SeaOrmStore;
use common::{at, dec, entry};

/// A tmpfs of `size`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("aim-disk-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .ok()?
            .success();
        mounted.then_some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the store's writer may still be closing its connection to the file.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes zeros to `path` until the filesystem refuses.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0_u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

async fn rows(url: &str, b: &Billable) -> u64 {
    // A connection of its own: what anyone else would see.
    let reader = SeaOrmStore::connect(url).await.unwrap();
    let calls = reader
        .sum_usage(&UsageFilter::for_billable(b.clone()))
        .await
        .unwrap()
        .calls;
    reader.connection().close_by_ref().await.unwrap();
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_a_full_disk_are_durable() {
    let Some(fs) = Tmpfs::mount("6m") else {
        ai_metering_test_env::skip(
            "writes_after_a_full_disk_are_durable",
            "cannot mount a tmpfs (not root?)",
        );
        return;
    };
    let url = common::sqlite_url(&fs.0.join("full.db"));
    let store = SeaOrmStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let b = Billable::new("team", "disk");
    let mut done = 0_u64;
    let record = {
        let store = store.clone();
        let b = b.clone();
        move |i: u64| {
            let store = store.clone();
            let e = entry(&b, 1_000 + i, 10, dec("0.001"), at(10, 12));
            async move { store.insert_usage_batch(&[e]).await }
        }
    };

    for i in 0..50 {
        record(i).await.unwrap();
        done += 1;
    }
    assert_eq!(rows(&url, &b).await, done);

    // Full: batches of many rows until one is refused.
    fill(&fs.0.join("filler"));
    let mut refused = 0;
    for i in 0..2_000 {
        let batch: Vec<_> = (0..50)
            .map(|j| entry(&b, 10_000 + i * 50 + j, 10, dec("0.001"), at(10, 12)))
            .collect();
        match store.insert_usage_batch(&batch).await {
            Ok(_) => done += 50,
            Err(_) => {
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
        }
    }
    assert!(refused > 0, "the full disk refused a write");
    // Writes on the store's pool (not the writer's) on the full disk.
    let mut credited = rust_decimal::Decimal::ZERO;
    for _ in 0..20 {
        let amount = Money::new(dec("1"), Currency::USD);
        if store
            .add_credits(&b, amount, "top-up", at(10, 12))
            .await
            .is_ok()
        {
            credited += dec("1");
        }
    }

    // Room again: every write reported as done is seen by another connection.
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    for i in 0..50 {
        record(100_000 + i).await.unwrap();
        done += 1;
    }
    for _ in 0..5 {
        let amount = Money::new(dec("1"), Currency::USD);
        store
            .add_credits(&b, amount, "top-up", at(10, 12))
            .await
            .unwrap();
        credited += dec("1");
    }
    assert_eq!(
        rows(&url, &b).await,
        done,
        "every acknowledged row is durable"
    );
    let reader = SeaOrmStore::connect(&url).await.unwrap();
    let wallet = reader.wallet(&b, Currency::USD).await.unwrap();
    assert_eq!(
        wallet.balance, credited,
        "every acknowledged top-up is durable"
    );
    reader.connection().close_by_ref().await.unwrap();
    store.connection().close_by_ref().await.unwrap();
}
