//! The compile-time switch: a user's crate built without the runtime's `tracing` feature
//! (tests/no-tracing) has neither `tracing` nor `opentelemetry` in its graph, and the
//! macros' expansions compile and run there.

use std::path::Path;
use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO"))
        .args(args)
        .arg("--manifest-path")
        .arg(root.join("tests/no-tracing/Cargo.toml"))
        .env("CARGO_TARGET_DIR", root.join("target/no-tracing"))
        // The expansions must not fire a single warning in the user crate.
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn without_the_tracing_feature_nothing_of_telemetry_is_built() {
    let tree = cargo(&[
        "tree", "-e", "normal", "--prefix", "none", "--format", "{p}",
    ]);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"eventsource-runtime"),
        "not the graph expected:\n{tree}"
    );
    assert!(crates.contains(&"eventsource-macros"));
    let telemetry: Vec<&&str> = crates
        .iter()
        .filter(|c| c.starts_with("tracing") || c.starts_with("opentelemetry"))
        .collect();
    assert!(
        telemetry.is_empty(),
        "telemetry crates in the graph: {telemetry:?}"
    );

    let run = cargo(&["run", "--quiet"]);
    assert_eq!(run.trim(), "ok");
}
