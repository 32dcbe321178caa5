//! `deploy/` stays true to the telemetry contract: every metric a Grafana dashboard queries is
//! in `docs/telemetry.md`'s metric table under the name Prometheus gives that OTLP metric, with
//! the labels the panel selects or groups by; seed 001's three panels (the contract's PromQL
//! block) are on the dashboards; the JSON and YAML files parse; the collector configuration
//! names only components of the collector's core distribution; the compose stack's pieces
//! (images, mounted files, ports, data source uids) fit together. No service, no feature.

use eventsource_test_support::contract_doc;
use eventsource_test_support::promql;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use promql::{Instrument, check_expr, contract_series, prometheus_label, prometheus_name, scan};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(relative: &str) -> Yaml {
    let path = deploy_dir().join(relative);
    serde_norway::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` (recursively) whose name ends with one of `extensions`.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path, extensions));
        } else if extensions
            .iter()
            .any(|ext| path.to_string_lossy().ends_with(ext))
        {
            out.push(path);
        }
    }
    out.sort();
    out
}

// ---- the dashboards ---------------------------------------------------------------------------

struct Dashboard {
    file: String,
    json: Json,
}

fn dashboards() -> Vec<Dashboard> {
    let found = files(&deploy_dir().join("grafana/dashboards"), &[".json"]);
    assert!(found.len() >= 4, "the four dashboards: {found:?}");
    found
        .iter()
        .map(|path| Dashboard {
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            json: serde_json::from_str(&read(path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        })
        .collect()
}

/// Every `expr` under `json`, with the title of the panel it is in.
fn exprs(json: &Json, panel: &str, out: &mut Vec<(String, String)>) {
    match json {
        Json::Object(map) => {
            let title = match (map.get("type"), map.get("title")) {
                (Some(_), Some(Json::String(title))) => title.as_str(),
                _ => panel,
            };
            if let Some(Json::String(expr)) = map.get("expr") {
                out.push((title.to_owned(), expr.clone()));
            }
            map.values().for_each(|v| exprs(v, title, out));
        }
        Json::Array(items) => items.iter().for_each(|v| exprs(v, panel, out)),
        _ => {}
    }
}

/// Every data source uid under `json`.
fn datasource_uids(json: &Json, out: &mut BTreeSet<String>) {
    match json {
        Json::Object(map) => {
            if let Some(Json::String(uid)) = map.get("datasource").and_then(|d| d.get("uid")) {
                out.insert(uid.clone());
            }
            map.values().for_each(|v| datasource_uids(v, out));
        }
        Json::Array(items) => items.iter().for_each(|v| datasource_uids(v, out)),
        _ => {}
    }
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_dashboard_query_names_contract_metrics_and_labels() {
    let series = contract_series();
    let mut problems = Vec::new();
    let mut queried = BTreeSet::new();
    for dashboard in dashboards() {
        let mut found = Vec::new();
        exprs(&dashboard.json, "", &mut found);
        assert!(!found.is_empty(), "{} has no query", dashboard.file);
        for (panel, expr) in found {
            for problem in check_expr(&expr, &series) {
                problems.push(format!("{} / {panel}: {problem}", dashboard.file));
            }
            for selector in scan(&expr).map(|s| s.selectors).unwrap_or_default() {
                if let Some(s) = series.get(&selector.metric) {
                    queried.insert(s.metric.clone());
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // Every metric of the contract is on some dashboard.
    let unused: Vec<_> = contract_doc::metric_rows()
        .into_iter()
        .map(|row| row.name)
        .filter(|name| !queried.contains(name))
        .collect();
    assert!(unused.is_empty(), "no dashboard shows {unused:?}");
}

#[test]
fn seed_panels_from_the_contract_are_on_the_dashboards() {
    let block = contract_doc::CONTRACT
        .split("```promql")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/telemetry.md has a ```promql block");
    let mut all = Vec::new();
    for dashboard in dashboards() {
        exprs(&dashboard.json, "", &mut all);
    }
    let on_dashboards: BTreeSet<String> = all.iter().map(|(_, e)| squeeze(e)).collect();
    let panels: Vec<String> = block
        .split("\n\n")
        .map(|p| {
            let lines: Vec<_> = p
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect();
            squeeze(&lines.join(" "))
        })
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(panels.len(), 3, "seed 001's three panels: {panels:?}");
    for panel in panels {
        assert!(on_dashboards.contains(&panel), "no dashboard has `{panel}`");
    }
}

#[test]
fn dashboards_use_the_provisioned_data_sources() {
    let provisioned: BTreeSet<String> =
        yaml("grafana/provisioning/datasources/datasources.yml")["datasources"]
            .as_sequence()
            .expect("a list of data sources")
            .iter()
            .map(|d| {
                d["uid"]
                    .as_str()
                    .expect("each data source has a uid")
                    .to_owned()
            })
            .collect();
    let mut uids = BTreeSet::new();
    for dashboard in dashboards() {
        assert!(
            dashboard.json["uid"].is_string() && dashboard.json["title"].is_string(),
            "{}: a uid and a title",
            dashboard.file
        );
        datasource_uids(&dashboard.json, &mut uids);
    }
    assert!(
        uids.is_subset(&provisioned),
        "{uids:?} used, {provisioned:?} provisioned"
    );
    assert!(provisioned.contains("jaeger"), "{provisioned:?}");
}

// ---- the checker itself ---------------------------------------------------------------------

#[test]
fn prometheus_names_follow_the_otlp_translation() {
    use Instrument::{Counter, Histogram};
    // otlptranslator's own examples.
    assert_eq!(
        prometheus_name("http.server.duration", "s", Histogram),
        "http_server_duration_seconds"
    );
    assert_eq!(
        prometheus_name("requests.count", "1", Counter),
        "requests_count_total"
    );
    assert_eq!(
        prometheus_name("system.network.dropped", "{packets}", Counter),
        "system_network_dropped_total"
    );
    assert_eq!(
        prometheus_name("throughput", "By/s", Histogram),
        "throughput_bytes_per_second"
    );
    // The contract's names.
    assert_eq!(
        prometheus_name("cqrs.command.total", "{command}", Counter),
        "cqrs_command_total"
    );
    assert_eq!(
        prometheus_name("cqrs.query.result_size", "{item}", Histogram),
        "cqrs_query_result_size"
    );
    assert_eq!(prometheus_label("projection.name"), "projection_name");
    // Every Prometheus name docs/telemetry.md spells out is one of the contract's.
    let series = contract_series();
    let prose = contract_doc::CONTRACT
        .split("\n## Metrics")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let spelled: Vec<String> = contract_doc::code_spans(prose)
        .into_iter()
        .map(|(token, _)| token)
        .filter(|t| {
            (t.starts_with("cqrs_") || t.starts_with("eventsource_"))
                && t.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .collect();
    assert!(spelled.len() >= 8, "{spelled:?}");
    for name in spelled {
        let known = series.contains_key(&name) || series.contains_key(&format!("{name}_bucket"));
        assert!(
            known,
            "docs/telemetry.md names `{name}`, not a contract metric's name"
        );
    }
}

#[test]
fn the_checker_rejects_what_the_contract_lacks() {
    let series = contract_series();
    let ok = |expr: &str| {
        let problems = check_expr(expr, &series);
        assert!(problems.is_empty(), "{expr}: {problems:?}");
    };
    let bad = |expr: &str, why: &str| {
        let problems = check_expr(expr, &series);
        assert!(
            problems.iter().any(|p| p.contains(why)),
            "`{expr}` should be refused for {why}: {problems:?}"
        );
    };
    ok("sum(rate(cqrs_command_total[5m])) by (command_type)");
    ok(r#"sum by (query_type) (rate(cqrs_query_total{query_status="error"}[$__rate_interval]))"#);
    ok("histogram_quantile(0.99, sum by (le) (rate(cqrs_projection_lag_seconds_bucket[5m])))");
    // Seed 001's name without the unit suffix Prometheus adds for `s`.
    bad(
        "histogram_quantile(0.95, sum(rate(cqrs_query_duration_bucket[5m])) by (le, query_type))",
        "`cqrs_query_duration_bucket` is not",
    );
    bad(
        "rate(cqrs_events_produced[5m])",
        "`cqrs_events_produced` is not",
    );
    bad(
        "rate(cqrs_command_duration_seconds[5m])",
        "is not the Prometheus name",
    );
    // Labels that are not the metric's attributes.
    bad(
        "sum by (aggregate_id) (rate(cqrs_command_total[5m]))",
        "`aggregate_id` is not an attribute of `cqrs.command.total`",
    );
    bad(
        r#"rate(cqrs_query_total{command_type="X"}[5m])"#,
        "`command_type` is not an attribute of `cqrs.query.total`",
    );
    bad(
        "sum by (le) (rate(cqrs_command_duration_seconds_count[5m]))",
        "`le` without a `_bucket`",
    );
    bad("sum(rate({__name__=\"x\"}[5m]))", "without a metric name");
    bad("vector(1)", "queries no metric");
}

// ---- the collector, Prometheus, compose ------------------------------------------------------

/// The component types of the collector's core distribution (`otel/opentelemetry-collector`),
/// from github.com/open-telemetry/opentelemetry-collector-releases,
/// distributions/otelcol/manifest.yaml at v0.159.0 (the image compose.yaml pins), each module's
/// type from its metadata.yaml (`otlp_grpc`/`otlp_http` with their deprecated aliases `otlp`,
/// `otlphttp`).
const CORE: &[(&str, &str)] = &[
    (
        "receivers",
        "nop otlp hostmetrics jaeger kafka prometheus zipkin",
    ),
    (
        "processors",
        "batch memory_limiter attributes resource span probabilistic_sampler filter",
    ),
    (
        "exporters",
        "debug nop otlp_grpc otlp otlp_http otlphttp file kafka prometheus \
         prometheusremotewrite zipkin",
    ),
    ("extensions", "zpages health_check pprof"),
    ("connectors", "forward"),
];

/// What in a collector configuration is not in the core distribution or not declared.
fn collector_problems(config: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let mut declared = BTreeSet::new();
    let sections = config.as_mapping().expect("a mapping");
    for key in sections.keys() {
        let key = key.as_str().unwrap_or_default();
        if key != "service" && !CORE.iter().any(|(class, _)| *class == key) {
            problems.push(format!("unknown section `{key}`"));
        }
    }
    for (class, types) in CORE {
        let Some(components) = config.get(class).and_then(Yaml::as_mapping) else {
            continue;
        };
        for id in components.keys().filter_map(Yaml::as_str) {
            let kind = id.split('/').next().unwrap();
            if !types.split_whitespace().any(|t| t == kind) {
                problems.push(format!("{class}: `{kind}` is not in the core distribution"));
            }
            declared.insert(id.to_owned());
        }
    }
    let pipelines = config["service"]["pipelines"].as_mapping();
    for (name, pipeline) in pipelines.into_iter().flatten() {
        for class in ["receivers", "processors", "exporters"] {
            for id in pipeline[class].as_sequence().into_iter().flatten() {
                let id = id.as_str().unwrap_or_default();
                if !declared.contains(id) {
                    problems.push(format!("pipeline {name:?} uses `{id}`, not declared"));
                }
            }
        }
    }
    problems
}

#[test]
fn the_collector_names_only_core_components() {
    let config = yaml("otel-collector.yaml");
    let problems = collector_problems(&config);
    assert!(problems.is_empty(), "{problems:#?}");
    let pipelines = &config["service"]["pipelines"];
    for (pipeline, exporter) in [("traces", "otlp_grpc/jaeger"), ("metrics", "prometheus")] {
        let exporters = pipelines[pipeline]["exporters"].as_sequence().unwrap();
        assert!(
            exporters.iter().any(|e| e.as_str() == Some(exporter)),
            "{pipeline} -> {exporter}"
        );
    }
    // The names the dashboards query assume suffixes.
    assert_eq!(
        config["exporters"]["prometheus"]["translation_strategy"].as_str(),
        Some("UnderscoreEscapingWithSuffixes")
    );

    // And the check refuses a contrib-only component and an undeclared one.
    let contrib: Yaml = serde_norway::from_str(
        "processors: {transform: {}}\nexporters: {loki: {}}\n\
         service: {pipelines: {logs: {receivers: [otlp], exporters: [loki]}}}",
    )
    .unwrap();
    let problems = collector_problems(&contrib);
    assert!(
        problems.iter().any(|p| p.contains("`transform`")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("`loki`")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("`otlp`, not declared")),
        "{problems:?}"
    );
}

#[test]
fn yaml_files_parse_and_the_stack_fits_together() {
    for path in files(&deploy_dir(), &[".yml", ".yaml"]) {
        let parsed: Result<Yaml, _> = serde_norway::from_str(&read(&path));
        assert!(parsed.is_ok(), "{}: {parsed:?}", path.display());
    }
    let compose = yaml("compose.yaml");
    let services = compose["services"].as_mapping().expect("services");
    for (name, service) in services {
        let image = service["image"].as_str().expect("an image");
        let tag = image.rsplit_once(':').map(|(_, tag)| tag);
        assert!(
            tag.is_some_and(|t| t != "latest" && t.contains(|c: char| c.is_ascii_digit())),
            "{name:?}: pin {image}"
        );
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(
                deploy_dir().join(source).exists(),
                "{name:?} mounts {source}"
            );
        }
    }
    let collector = &compose["services"]["otel-collector"];
    assert!(
        collector["image"]
            .as_str()
            .unwrap()
            .starts_with("otel/opentelemetry-collector:"),
        "the core image, not -contrib"
    );
    // Prometheus scrapes the port the collector's exporter listens on.
    let endpoint = yaml("otel-collector.yaml")["exporters"]["prometheus"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = endpoint.rsplit(':').next().unwrap();
    let prometheus = read(&deploy_dir().join("prometheus.yml"));
    assert!(
        prometheus.contains(&format!("otel-collector:{port}")),
        "prometheus.yml scrapes otel-collector:{port}"
    );
    // Grafana's dashboard provider reads the directory compose mounts the dashboards on.
    let provider = yaml("grafana/provisioning/dashboards/dashboards.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let grafana_volumes = compose["services"]["grafana"]["volumes"]
        .as_sequence()
        .unwrap();
    assert!(
        grafana_volumes
            .iter()
            .filter_map(Yaml::as_str)
            .any(|v| v.starts_with("./grafana/dashboards:") && v.contains(&format!(":{path}"))),
        "dashboards mounted on {path}"
    );
}
