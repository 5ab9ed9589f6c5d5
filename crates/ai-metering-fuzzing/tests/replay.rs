//! Every committed input of every fuzz target, run as an ordinary test: the seeds in
//! `fuzz/seeds/<target>/` and the past crash inputs in `fuzz/regressions/<target>/` (a
//! crash found by fuzzing is fixed, and its input from `fuzz/artifacts/<target>/` is
//! committed there, so it cannot come back).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use ai_metering_fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files in `dir/<target>/`, sorted; none when the folder does not exist.
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let folder = fuzz_dir().join(dir).join(target);
    let Ok(entries) = fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The target folders under `dir` (`seeds` or `regressions`).
fn folders(dir: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(fuzz_dir().join(dir)) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn replay(dir: &str, target: &str, body: ai_metering_fuzzing::Body) -> usize {
    let files = inputs(dir, target);
    for file in &files {
        let data = fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} makes the target fail",
            file.display()
        );
    }
    files.len()
}

#[test]
fn every_seed_and_past_crash_passes_its_target() {
    for (target, body) in TARGETS {
        let seeds = replay("seeds", target, *body);
        assert!(seeds > 0, "{target}: no seeds in fuzz/seeds/{target}/");
        replay("regressions", target, *body);
    }
}

#[test]
fn every_input_folder_belongs_to_a_target() {
    let known: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    for dir in ["seeds", "regressions"] {
        for folder in folders(dir) {
            assert!(
                known.contains(&folder.as_str()),
                "fuzz/{dir}/{folder}/ belongs to no target of ai-metering-fuzzing"
            );
        }
    }
}

#[test]
fn every_fuzz_binary_is_a_target_here() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|name| *name != "ai-metering-fuzz")
        .collect();
    let mut known: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    let mut bins_sorted = bins.clone();
    known.sort_unstable();
    bins_sorted.sort_unstable();
    assert_eq!(
        bins_sorted, known,
        "fuzz/Cargo.toml's [[bin]]s and TARGETS differ"
    );
}
