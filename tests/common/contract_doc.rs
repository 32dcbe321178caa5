//! `docs/telemetry.md`, parsed: its tables and the metric rows. Shared by `tests/telemetry/alone/contract/`
//! (which compares the contract with what the runtime exports) and `tests/docs/deploy.rs` (which
//! checks the dashboards' queries against it), so there is one parser of the contract.
#![allow(dead_code)]

use std::collections::BTreeSet;

pub const CONTRACT: &str = include_str!("../../docs/telemetry.md");

/// One row of the metric table.
#[derive(Debug)]
pub struct MetricRow {
    /// `histogram` or `counter`.
    pub instrument: String,
    pub name: String,
    pub unit: String,
    pub keys: BTreeSet<String>,
    /// Those of `keys` only some data points carry: a key followed by a parenthesis saying
    /// `only` (`messaging.system` (consumer groups only)).
    pub optional_keys: BTreeSet<String>,
    /// A histogram's bucket boundaries; none for a counter or a gauge.
    pub boundaries: Option<Vec<f64>>,
}

/// The table under the heading `heading`, one `Vec` of cells per body row.
pub fn table(heading: &str) -> Vec<Vec<String>> {
    let section = CONTRACT
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/telemetry.md has no `## {heading}` section"));
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The code spans (`...`) of `cell`, each with whether it directly follows `=` (a value).
pub fn code_spans(cell: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = cell;
    while let Some(start) = rest.find('`') {
        let before = rest[..start].trim_end();
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        out.push((after[..end].to_owned(), before.ends_with('=')));
        rest = &after[end + 1..];
    }
    out
}

/// A metric's attribute keys: every code span outside parentheses (which hold values).
pub fn metric_keys_of(cell: &str) -> BTreeSet<String> {
    let mut depth = 0usize;
    let outside: String = cell
        .chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect();
    code_spans(&outside)
        .into_iter()
        .map(|(token, _)| token)
        .collect()
}

/// The keys of `cell` followed by a parenthesis that says `only`: carried by some data
/// points only.
pub fn optional_keys_of(cell: &str) -> BTreeSet<String> {
    metric_keys_of(cell)
        .into_iter()
        .filter(|key| {
            let Some(at) = cell.find(&format!("`{key}`")) else {
                return false;
            };
            let after = cell[at + key.len() + 2..].trim_start();
            after.starts_with('(')
                && after
                    .split_once(')')
                    .is_some_and(|(inside, _)| inside.contains("only"))
        })
        .collect()
}

pub fn metric_rows() -> Vec<MetricRow> {
    let rows: Vec<MetricRow> = table("Metrics")
        .into_iter()
        .map(|cells| {
            assert_eq!(cells.len(), 5, "a metric row has five cells: {cells:?}");
            let code = |cell: &str| {
                let spans = code_spans(cell);
                assert_eq!(spans.len(), 1, "one name or unit per cell: `{cell}`");
                spans[0].0.clone()
            };
            MetricRow {
                instrument: cells[0].clone(),
                name: code(&cells[1]),
                unit: code(&cells[2]),
                keys: metric_keys_of(&cells[3]),
                optional_keys: optional_keys_of(&cells[3]),
                boundaries: code_spans(&cells[4]).first().map(|(list, _)| {
                    list.split(',')
                        .map(|n| n.trim().parse::<f64>().expect("a number"))
                        .collect()
                }),
            }
        })
        .collect();
    assert!(rows.len() >= 12, "the metric table parsed: {rows:#?}");
    rows
}
