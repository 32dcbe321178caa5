//! Every committed input of every target, replayed through the target's checks: what
//! fuzzing found once (a crash fixed, an input that reached new code) is a regression test
//! of every `cargo test` run, on the stable toolchain, with no fuzzer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The committed inputs of `target`, in the order of their names.
fn inputs(target: &str) -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    inputs
}

/// Runs `check` on each input of `target`; fails naming every input that failed.
fn replay(target: &str) {
    let check = crate::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .expect("a target of TARGETS");
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "corpus/{target} holds no input");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a corpus input");
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs failed (each one's panic is printed above; replay one with \
         `cargo +nightly fuzz run {target} <input>`):\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
}

/// The names of the entries of `folder` (under the crate), without `extension`, sorted.
fn names(folder: &str, extension: &str) -> Vec<String> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .map(|name| name.trim_end_matches(extension).to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_target_and_every_corpus_is_replayed() {
    let replayed: Vec<&str> = crate::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names("fuzz_targets", ".rs"),
        replayed,
        "fuzz_targets/ and TARGETS"
    );
    assert_eq!(names("corpus", ""), replayed, "corpus/ and TARGETS");
}

#[test]
fn sql_row_replays_its_corpus() {
    replay("sql_row");
}

#[test]
fn trace_context_replays_its_corpus() {
    replay("trace_context");
}

#[test]
fn upcast_decode_replays_its_corpus() {
    replay("upcast_decode");
}

#[test]
fn wire_decode_replays_its_corpus() {
    replay("wire_decode");
}
