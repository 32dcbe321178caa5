//! An error as the tests read it: the whole chain, on one line.

/// `error` and its sources, joined by `: ` (`outer: inner: root`).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}
