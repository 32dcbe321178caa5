//! The fuzz targets' checks, one module a target, and the text forms their inputs are
//! written in, so that a corpus file reads as what it stands for (a message's headers, a
//! row's cells).
//!
//! The targets in `fuzz_targets/` (cargo-fuzz, nightly) only hand each input to their
//! module's `check`. The same checks replay every committed input of `corpus/<target>/`
//! under a plain `cargo test` on stable (`src/corpora.rs`), so each input found once is
//! a regression test wherever the tests run.

#[cfg(test)]
mod corpora;
pub mod sql_row;
pub mod trace_context;
pub mod upcast_decode;
pub mod wire_decode;

/// A target's checks: they panic on an input that fails one.
pub type Check = fn(&[u8]);

/// Every target: its name (its folder under `corpus/`) and its checks.
pub const TARGETS: [(&str, Check); 4] = [
    ("sql_row", sql_row::check),
    ("trace_context", trace_context::check),
    ("upcast_decode", upcast_decode::check),
    ("wire_decode", wire_decode::check),
];

/// The header lines at the start of `data`, `key: value` each (the value's bytes as they
/// are, not necessarily UTF-8; a line without `": "` is a key with an empty value), up to
/// the first empty line; and what follows that line (all of `data` when no line is empty
/// but the input has no header line either: it then starts with an empty line).
#[must_use]
pub fn headers_and_body(data: &[u8]) -> (Vec<(&str, &[u8])>, &[u8]) {
    let mut headers = Vec::new();
    let mut rest = data;
    loop {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if line.is_empty() {
            return (headers, after);
        }
        headers.push(header(line));
        rest = after;
        if rest.is_empty() {
            return (headers, rest);
        }
    }
}

/// One `key: value` line (a key that is not UTF-8 reads as the empty key).
fn header(line: &[u8]) -> (&str, &[u8]) {
    let (key, value) = match line.windows(2).position(|pair| pair == b": ") {
        Some(at) => (&line[..at], &line[at + 2..]),
        None => (line, &line[line.len()..]),
    };
    (std::str::from_utf8(key).unwrap_or_default(), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_end_at_the_first_empty_line() {
        let (headers, body) = headers_and_body(b"a: 1\nb: x: y\nc\n\n{\"x\":1}\n");
        assert_eq!(headers, [("a", &b"1"[..]), ("b", b"x: y"), ("c", b"")]);
        assert_eq!(body, b"{\"x\":1}\n");
        assert_eq!(headers_and_body(b"\n{}"), (vec![], &b"{}"[..]));
        assert_eq!(
            headers_and_body(b"a: 1"),
            (vec![("a", &b"1"[..])], &b""[..])
        );
    }
}
