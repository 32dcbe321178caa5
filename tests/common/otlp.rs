//! What the tests that run an example and export over OTLP/HTTP JSON share: building the
//! example, and decoding the spans the collector received.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

pub const KIND_INTERNAL: i64 = 1;
pub const KIND_SERVER: i64 = 2;
pub const KIND_CLIENT: i64 = 3;
pub const KIND_PRODUCER: i64 = 4;
pub const KIND_CONSUMER: i64 = 5;
pub const STATUS_UNSET: i64 = 0;
pub const STATUS_ERROR: i64 = 2;

/// `target/<profile>/examples/<name>`, built (or found up to date) by cargo with `features`
/// and `otlp-json`.
pub fn example_binary(name: &str, features: &[&str]) -> PathBuf {
    // The test runs as target/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut build = Command::new(env!("CARGO"));
    // What cargo sets for the running test (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...) must
    // not reach this build: build scripts that watch one of them (ring's watches
    // `CARGO_MANIFEST_DIR`) would run again, and everything above them be rebuilt, here and
    // again by the next `cargo test`.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_for_tests = key == "OUT_DIR"
            || key == "CARGO_MANIFEST_DIR"
            || key == "CARGO_MANIFEST_PATH"
            || key == "CARGO_CRATE_NAME"
            || key == "CARGO_PRIMARY_PACKAGE"
            || key == "CARGO_TARGET_TMPDIR"
            || key == "CARGO_RUSTC_CURRENT_DIR"
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_");
        if set_for_tests {
            build.env_remove(key);
        }
    }
    build
        .args(["build", "--quiet", "--example", name, "--profile"])
        .arg(&profile)
        .arg("--manifest-path")
        // The examples are the root package's (this crate is `tests/common/`).
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The collector here decodes OTLP/JSON, which the runtime exports with `otlp-json`.
    let features: Vec<&str> = features.iter().copied().chain(["otlp-json"]).collect();
    build.arg("--features").arg(features.join(","));
    let build = build.output().expect("cargo runs");
    assert!(
        build.status.success() || binary.exists(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    if !build.status.success() {
        eprintln!(
            "cargo build --example {name} failed; running the binary already built:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
    }
    assert!(binary.exists(), "no example at {}", binary.display());
    binary
}

/// A command running `binary` without the caller's telemetry and store settings, exporting
/// to `endpoint` over OTLP/HTTP JSON.
pub fn example_command(binary: &Path, endpoint: &str) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars() {
        // `EVENTSOURCE_*`: the process switch, and the store (in memory by default).
        if key.starts_with("OTEL_")
            || key.starts_with("EVENTSOURCE_")
            || key == "RUST_LOG"
            || key == "NO_COLOR"
            // The OTLP/HTTP client honours the proxy variables; the collector is local.
            || key.to_ascii_uppercase().ends_with("_PROXY")
        {
            command.env_remove(key);
        }
    }
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
    command
}

/// An attribute value, by its OTLP `AnyValue` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    StrArray(Vec<String>),
    Other(Json),
}

#[derive(Debug)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i64,
    pub start: u128,
    pub attributes: BTreeMap<String, AttrValue>,
    pub events: Vec<(String, BTreeMap<String, AttrValue>)>,
    pub links: Vec<(String, String)>,
    pub status_code: i64,
    pub status_message: String,
    /// The `service.name` of the resource that exported it.
    pub service: String,
    /// The name and version of its instrumentation scope.
    pub scope: (String, String),
}

impl Span {
    #[track_caller]
    pub fn str(&self, key: &str) -> &str {
        match self.attributes.get(key) {
            Some(AttrValue::Str(s)) => s,
            other => panic!("`{}`.{key} is not a stringValue: {other:?}", self.name),
        }
    }

    #[track_caller]
    pub fn int(&self, key: &str) -> i64 {
        match self.attributes.get(key) {
            Some(AttrValue::Int(i)) => *i,
            other => panic!("`{}`.{key} is not an intValue: {other:?}", self.name),
        }
    }
}

pub fn array(json: &Json) -> &[Json] {
    json.as_array().map_or(&[], Vec::as_slice)
}

pub fn text(json: &Json) -> String {
    json.as_str().unwrap_or_default().to_owned()
}

/// An OTLP/JSON 64-bit integer: a number, or (proto3 JSON) a string of digits.
fn integer(json: &Json) -> Option<i128> {
    json.as_i64()
        .map(i128::from)
        .or_else(|| json.as_u64().map(i128::from))
        .or_else(|| json.as_str().and_then(|s| s.parse().ok()))
}

/// An enum: a number, or its proto name.
fn enumeration(json: &Json, names: &[&str]) -> i64 {
    if let Some(n) = json.as_i64() {
        return n;
    }
    let name = json.as_str().unwrap_or_default();
    names
        .iter()
        .position(|n| *n == name)
        .map_or(-1, |i| i as i64)
}

fn any_value(json: &Json) -> AttrValue {
    if let Some(s) = json.get("stringValue") {
        AttrValue::Str(text(s))
    } else if let Some(i) = json.get("intValue") {
        AttrValue::Int(integer(i).and_then(|i| i64::try_from(i).ok()).unwrap())
    } else if let Some(d) = json.get("doubleValue") {
        AttrValue::Double(d.as_f64().unwrap())
    } else if let Some(b) = json.get("boolValue") {
        AttrValue::Bool(b.as_bool().unwrap())
    } else if let Some(values) = json.get("arrayValue") {
        let values = array(&values["values"]);
        let strings: Vec<String> = values
            .iter()
            .filter_map(|v| v.get("stringValue").map(text))
            .collect();
        if strings.len() == values.len() {
            AttrValue::StrArray(strings)
        } else {
            AttrValue::Other(json.clone())
        }
    } else {
        AttrValue::Other(json.clone())
    }
}

pub fn attributes(json: &Json) -> BTreeMap<String, AttrValue> {
    array(json)
        .iter()
        .map(|kv| (text(&kv["key"]), any_value(&kv["value"])))
        .collect()
}

pub fn decode(bodies: &[Json]) -> Vec<Span> {
    const KINDS: [&str; 6] = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    const CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    let mut spans = Vec::new();
    for body in bodies {
        for resource_spans in array(&body["resourceSpans"]) {
            let resource = attributes(&resource_spans["resource"]["attributes"]);
            let service = match resource.get("service.name") {
                Some(AttrValue::Str(name)) => name.clone(),
                _ => String::new(),
            };
            for scope_spans in array(&resource_spans["scopeSpans"]) {
                let scope = &scope_spans["scope"];
                let scope = (text(&scope["name"]), text(&scope["version"]));
                for span in array(&scope_spans["spans"]) {
                    let status = &span["status"];
                    spans.push(Span {
                        trace_id: text(&span["traceId"]),
                        span_id: text(&span["spanId"]),
                        parent_span_id: text(&span["parentSpanId"]),
                        name: text(&span["name"]),
                        kind: enumeration(&span["kind"], &KINDS),
                        start: integer(&span["startTimeUnixNano"]).unwrap_or(0) as u128,
                        attributes: attributes(&span["attributes"]),
                        events: array(&span["events"])
                            .iter()
                            .map(|e| (text(&e["name"]), attributes(&e["attributes"])))
                            .collect(),
                        links: array(&span["links"])
                            .iter()
                            .map(|l| (text(&l["traceId"]), text(&l["spanId"])))
                            .collect(),
                        status_code: if status.get("code").is_some() {
                            enumeration(&status["code"], &CODES)
                        } else {
                            STATUS_UNSET
                        },
                        status_message: text(&status["message"]),
                        service: service.clone(),
                        scope: scope.clone(),
                    });
                }
            }
        }
    }
    spans
}

/// The spans as indented trees, for failure messages.
pub fn tree(spans: &[Span]) -> String {
    fn write(out: &mut String, spans: &[Span], span: &Span, depth: usize) {
        out.push_str(&format!(
            "{:indent$}{} kind={} status={}{}\n",
            "",
            span.name,
            span.kind,
            span.status_code,
            if span.links.is_empty() {
                ""
            } else {
                " (linked)"
            },
            indent = depth * 2
        ));
        let mut children: Vec<&Span> = spans
            .iter()
            .filter(|c| c.parent_span_id == span.span_id && c.trace_id == span.trace_id)
            .collect();
        children.sort_by_key(|c| c.start);
        for child in children {
            write(out, spans, child, depth + 1);
        }
    }
    let mut roots: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            !spans
                .iter()
                .any(|p| p.span_id == s.parent_span_id && p.trace_id == s.trace_id)
        })
        .collect();
    roots.sort_by_key(|s| s.start);
    let mut out = String::new();
    for root in roots {
        write(&mut out, spans, root, 0);
    }
    out
}
