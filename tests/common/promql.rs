//! The Prometheus names of the contract's OTLP metrics, and a PromQL scanner that checks a
//! query against them: what `tests/docs/deploy.rs` holds the Grafana dashboards to.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use super::contract_doc;

// ---- OTLP metric names as Prometheus names --------------------------------------------------
//
// What the collector's `prometheus` exporter (deploy/otel-collector.yaml sets
// `translation_strategy: UnderscoreEscapingWithSuffixes`, the default) and Prometheus's own OTLP
// receiver (`otlp.translation_strategy`, same default) do, in github.com/prometheus/otlptranslator
// `metric_namer.go` (`normalizeName`, `buildUnitSuffixes`, `unitMap`) and `normalize_label.go`:
// the name is split into tokens at every character outside `[a-zA-Z0-9:]` and joined with `_`;
// the unit's main part is appended as a token unless the name has that token already, mapped
// through `unitMap` (`s` -> `seconds`, `By` -> `bytes`, ...) and dropped when it is an
// annotation in braces (`{command}`); a `/x` part adds `per_<x>`; a monotonic counter has every
// `total` token removed and one appended (`cqrs.command.total` stays `cqrs_command_total`); a
// histogram is stored as `<name>_bucket` (with `le`), `<name>_sum` and `<name>_count`. Labels:
// every character outside `[a-zA-Z0-9_]` becomes `_`, a leading digit gets `key_`, a single
// leading underscore `key`.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Instrument {
    Counter,
    Histogram,
    Gauge,
}

pub fn instrument(cell: &str) -> Instrument {
    match cell {
        "counter" => Instrument::Counter,
        "histogram" => Instrument::Histogram,
        "gauge" => Instrument::Gauge,
        other => {
            panic!("docs/telemetry.md: an instrument tests/docs/deploy.rs does not name: {other}")
        }
    }
}

fn unit_token(unit: &str) -> String {
    let mapped = match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    };
    mapped
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn per_unit_token(unit: &str) -> String {
    let mapped = match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    };
    unit_token(mapped)
}

/// The Prometheus name of an OTLP metric (a histogram's base name, before `_bucket`).
pub fn prometheus_name(name: &str, unit: &str, instrument: Instrument) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main.trim(), Some(per.trim())),
        None => (unit.trim(), None),
    };
    let annotation = |u: &str| u.is_empty() || u.contains(['{', '}']);
    if !annotation(main) {
        let token = unit_token(main);
        if !token.is_empty() && !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    if let Some(per) = per.filter(|per| !annotation(per)) {
        let token = per_unit_token(per);
        if !token.is_empty() && !tokens.iter().any(|t| *t == format!("per_{token}")) {
            tokens.push(format!("per_{token}"));
        }
    }
    if instrument == Instrument::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".to_owned());
    }
    let joined = tokens.join("_");
    match joined.chars().next() {
        Some(c) if c.is_ascii_digit() => format!("_{joined}"),
        _ => joined,
    }
}

pub fn prometheus_label(key: &str) -> String {
    let label: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{label}")
    } else if label.starts_with('_') && !label.starts_with("__") {
        format!("key{label}")
    } else {
        label
    }
}

/// A series Prometheus stores for a contract metric.
#[derive(Debug)]
pub struct Series {
    /// The contract's (OTLP) name.
    pub metric: String,
    pub labels: BTreeSet<String>,
    pub bucket: bool,
}

/// Every series name the contract's metrics give in Prometheus.
pub fn contract_series() -> BTreeMap<String, Series> {
    let mut out = BTreeMap::new();
    for row in contract_doc::metric_rows() {
        let kind = instrument(&row.instrument);
        let base = prometheus_name(&row.name, &row.unit, kind);
        let labels: BTreeSet<String> = row.keys.iter().map(|k| prometheus_label(k)).collect();
        let suffixes: &[&str] = match kind {
            Instrument::Counter | Instrument::Gauge => &[""],
            Instrument::Histogram => &["_bucket", "_sum", "_count"],
        };
        for suffix in suffixes {
            let series = Series {
                metric: row.name.clone(),
                labels: labels.clone(),
                bucket: *suffix == "_bucket",
            };
            assert!(
                out.insert(format!("{base}{suffix}"), series).is_none(),
                "two contract metrics are `{base}{suffix}` in Prometheus"
            );
        }
    }
    out
}

// ---- PromQL, scanned --------------------------------------------------------------------------

/// A metric selector: `name{label="value", ...}`.
#[derive(Debug, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<String>,
}

/// The metric selectors of a PromQL expression and the labels of its `by`, `without`, `on`,
/// `ignoring`, `group_left` and `group_right` clauses.
#[derive(Debug, Default, PartialEq)]
pub struct Scan {
    pub selectors: Vec<Selector>,
    pub grouping: BTreeSet<String>,
}

const GROUPING: &str = "by without on ignoring group_left group_right";
const AGGREGATIONS: &str = "sum min max avg group stddev stdvar count count_values bottomk topk \
    quantile limitk limit_ratio";
const KEYWORDS: &str = "and or unless bool offset atan2 inf nan";

fn is_one_of(word: &str, list: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

struct Scanner<'a> {
    chars: Vec<char>,
    at: usize,
    expr: &'a str,
}

impl Scanner<'_> {
    fn peek(&mut self) -> Option<char> {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
        self.chars.get(self.at).copied()
    }

    fn ident(&mut self) -> String {
        let start = self.at;
        while self.chars.get(self.at).is_some_and(|&c| is_ident(c)) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// Skips a quoted string starting at the cursor.
    fn string(&mut self) -> Result<(), String> {
        let quote = self.chars[self.at];
        self.at += 1;
        while let Some(&c) = self.chars.get(self.at) {
            self.at += if c == '\\' { 2 } else { 1 };
            if c == quote {
                return Ok(());
            }
        }
        Err(format!("an unterminated string in `{}`", self.expr))
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        match self.peek() {
            Some(c) if c == wanted => {
                self.at += 1;
                Ok(())
            }
            other => Err(format!(
                "`{wanted}` expected, {other:?} found in `{}`",
                self.expr
            )),
        }
    }

    /// `label op "value", ...}` after a `{`: the labels.
    fn matchers(&mut self) -> Result<Vec<String>, String> {
        let mut labels = Vec::new();
        loop {
            match self.peek() {
                Some('}') => {
                    self.at += 1;
                    return Ok(labels);
                }
                Some(',') => self.at += 1,
                Some(c) if is_ident_start(c) => {
                    labels.push(self.ident());
                    while self.peek().is_some_and(|c| "=!~".contains(c)) {
                        self.at += 1;
                    }
                    match self.peek() {
                        Some('"' | '\'' | '`') => self.string()?,
                        other => {
                            return Err(format!("a label value expected, {other:?} found"));
                        }
                    }
                }
                other => return Err(format!("{other:?} in a selector of `{}`", self.expr)),
            }
        }
    }
}

pub fn scan(expr: &str) -> Result<Scan, String> {
    let mut s = Scanner {
        chars: expr.chars().collect(),
        at: 0,
        expr,
    };
    let mut out = Scan::default();
    while let Some(c) = s.peek() {
        match c {
            '"' | '\'' | '`' => s.string()?,
            // A range or subquery (`[5m]`, `[$__rate_interval]`).
            '[' => {
                while s.chars.get(s.at).is_some_and(|&c| c != ']') {
                    s.at += 1;
                }
                s.at += 1;
            }
            // A Grafana variable: `$__rate_interval`, `${name}`.
            '$' => {
                s.at += 1;
                if s.chars.get(s.at) == Some(&'{') {
                    while s.chars.get(s.at).is_some_and(|&c| c != '}') {
                        s.at += 1;
                    }
                    s.at += 1;
                } else {
                    s.ident();
                }
            }
            '{' => return Err(format!("a selector without a metric name in `{expr}`")),
            c if c.is_ascii_digit() || c == '.' => {
                while s
                    .chars
                    .get(s.at)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == '.')
                {
                    s.at += 1;
                }
            }
            c if is_ident_start(c) => {
                let word = s.ident();
                let next = s.peek();
                if is_one_of(&word, GROUPING) {
                    if next == Some('(') {
                        s.at += 1;
                        loop {
                            match s.peek() {
                                Some(')') => break s.at += 1,
                                Some(',') => s.at += 1,
                                Some(c) if is_ident_start(c) => {
                                    out.grouping.insert(s.ident());
                                }
                                other => {
                                    return Err(format!("{other:?} in `{word} (...)` of `{expr}`"));
                                }
                            }
                        }
                    }
                } else if is_one_of(&word.to_ascii_lowercase(), KEYWORDS)
                    || is_one_of(&word, AGGREGATIONS)
                    || next == Some('(')
                {
                    // An operator, an aggregation or a function.
                } else {
                    let matchers = if next == Some('{') {
                        s.expect('{')?;
                        s.matchers()?
                    } else {
                        Vec::new()
                    };
                    out.selectors.push(Selector {
                        metric: word,
                        matchers,
                    });
                }
            }
            _ => s.at += 1,
        }
    }
    Ok(out)
}

/// What is wrong with `expr` against the contract's series: unknown metrics, labels that are
/// not attributes of the metrics selected (`le` only with a `_bucket` series).
pub fn check_expr(expr: &str, series: &BTreeMap<String, Series>) -> Vec<String> {
    let scanned = match scan(expr) {
        Ok(scanned) => scanned,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    if scanned.selectors.is_empty() {
        problems.push(format!("`{expr}` queries no metric"));
    }
    let mut known = Vec::new();
    for selector in &scanned.selectors {
        let Some(s) = series.get(&selector.metric) else {
            problems.push(format!(
                "`{}` is not the Prometheus name of a metric in docs/telemetry.md (in `{expr}`)",
                selector.metric
            ));
            continue;
        };
        for label in &selector.matchers {
            if !s.labels.contains(label) {
                problems.push(format!(
                    "`{label}` is not an attribute of `{}` in docs/telemetry.md (in `{expr}`)",
                    s.metric
                ));
            }
        }
        known.push(s);
    }
    for label in &scanned.grouping {
        if label == "le" {
            if !known.iter().any(|s| s.bucket) {
                problems.push(format!("`le` without a `_bucket` series in `{expr}`"));
            }
            continue;
        }
        for s in &known {
            if !s.labels.contains(label) {
                problems.push(format!(
                    "`{label}` is not an attribute of `{}` in docs/telemetry.md (in `{expr}`)",
                    s.metric
                ));
            }
        }
    }
    problems
}
