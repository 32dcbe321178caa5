//! Writing to stdout: text, tables and JSON; a closed pipe (`| head`) ends quietly.

use std::io::Write as _;

use serde::Serialize;

use crate::exit::CliError;

/// Writes `text` to stdout.
pub fn text(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Output(error))
        }
        _ => Ok(()),
    }
}

/// Writes `value` to stdout as pretty JSON, then a new line.
pub fn json(value: &impl Serialize) -> Result<(), CliError> {
    let mut encoded =
        serde_json::to_string_pretty(value).map_err(|e| CliError::Output(e.into()))?;
    encoded.push('\n');
    text(&encoded)
}

/// A table: each column as wide as its widest cell (the last one not padded).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A duration for people: `42s`, `3m05s`, `2h03m`, `4d02h`.
pub fn age(seconds: f64) -> String {
    // Whole seconds are enough to tell how far behind; a negative age (clocks apart) is 0.
    let whole = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (minutes, hours, days) = (whole / 60, whole / 3600, whole / 86_400);
    if days > 0 {
        format!("{days}d{:02}h", hours % 24)
    } else if hours > 0 {
        format!("{hours}h{:02}m", minutes % 60)
    } else if minutes > 0 {
        format!("{minutes}m{:02}s", whole % 60)
    } else {
        format!("{whole}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(-3.0), "0s");
        assert_eq!(age(42.9), "42s");
        assert_eq!(age(185.0), "3m05s");
        assert_eq!(age(7380.0), "2h03m");
        assert_eq!(age(352_800.0), "4d02h");
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let rows = vec![vec!["orders".to_owned(), "60".to_owned(), "x".to_owned()]];
        assert_eq!(
            table(&["NAME", "CHECKPOINT", "LEASE"], &rows),
            "NAME    CHECKPOINT  LEASE\norders  60          x\n"
        );
    }
}
