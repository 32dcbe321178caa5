//! The contract, parsed: the span table's rows, names, kinds and attribute keys.

use super::*;

/// One row of the span table.
#[derive(Debug)]
pub(super) struct SpanRow {
    pub(super) step: String,
    pub(super) names: Vec<String>,
    pub(super) kind: SpanKind,
    pub(super) relation: String,
    pub(super) keys: BTreeSet<String>,
}

/// The text between the span table and the next heading: paragraphs naming attributes
/// every store, broker or failed span may add.
pub(super) fn span_paragraphs() -> String {
    let section = CONTRACT
        .split("\n## ")
        .find(|s| s.starts_with("Spans"))
        .unwrap();
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .skip_while(|line| line.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An attribute key: dotted lower-case words (`eventsource.aggregate.id`), not a value.
pub(super) fn keys_of(cell: &str) -> BTreeSet<String> {
    code_spans(cell)
        .into_iter()
        .filter(|(token, is_value)| {
            !is_value
                && token.contains('.')
                && token
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
                && !token.starts_with('.')
        })
        .map(|(token, _)| token)
        .collect()
}

fn kind_of(cell: &str) -> SpanKind {
    match cell.split_whitespace().next() {
        Some("INTERNAL") => SpanKind::Internal,
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        other => panic!("docs/telemetry.md: unknown span kind {other:?} in `{cell}`"),
    }
}

/// The span names a name cell allows: its code spans that look like names (not calls or
/// paths), with `{a,b}` expanded to alternatives; `{Placeholder}` stays as a wildcard.
fn names_of(cell: &str) -> Vec<String> {
    code_spans(cell)
        .into_iter()
        .map(|(token, _)| token)
        .filter(|token| !token.contains("::") && !token.contains('('))
        .flat_map(|token| match (token.find('{'), token.find('}')) {
            (Some(open), Some(close)) if token[open..close].contains(',') => token[open + 1..close]
                .split(',')
                .map(|alt| format!("{}{}{}", &token[..open], alt.trim(), &token[close + 1..]))
                .collect(),
            _ => vec![token],
        })
        .collect()
}

/// Whether `name` matches a documented pattern (`{Placeholder}` is one identifier).
pub(super) fn name_matches(pattern: &str, name: &str) -> bool {
    match (pattern.find('{'), pattern.find('}')) {
        (Some(open), Some(close)) => {
            let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
            name.len() > prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
                && name[prefix.len()..name.len() - suffix.len()]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_')
        }
        _ => pattern == name,
    }
}

pub(super) fn span_rows() -> Vec<SpanRow> {
    let rows: Vec<SpanRow> = table("Spans")
        .into_iter()
        .map(|cells| {
            assert_eq!(cells.len(), 5, "a span row has five cells: {cells:?}");
            SpanRow {
                step: cells[0].clone(),
                names: names_of(&cells[1]),
                kind: kind_of(&cells[2]),
                relation: cells[3].clone(),
                keys: keys_of(&cells[4]),
            }
        })
        .collect();
    assert!(rows.len() >= 15, "the span table parsed: {rows:#?}");
    rows
}
