//! Secrets kept out of what a person reads: URLs shown with their password as `***`, and
//! passwords the process was given hidden from every log line and console trace that
//! [`init`](super::init) writes, whoever wrote the line (a client library logging its
//! connection settings at `TRACE` included).
//!
//! The broker adapters and the PostgreSQL stores hide the password of the URL they are given,
//! the Kafka adapter the values of its `*password*` and `*secret*` settings, and `init` the
//! values of `OTEL_EXPORTER_OTLP_HEADERS`; an application hides its own with [`hide`].
//!
//! ```
//! use eventsource_runtime::telemetry::secrets;
//!
//! let url = "amqp://orders:s3cret-4711@rabbit.internal:5672/%2f";
//! assert_eq!(
//!     secrets::redact_url(url),
//!     "amqp://orders:***@rabbit.internal:5672/%2f"
//! );
//! secrets::hide("s3cret-4711"); // log lines written by telemetry::init() show `***` instead
//! ```

// Without the `tracing` feature there is no writer to scrub, and without a broker or
// PostgreSQL no URL to hide: what only those use is unused.
#![cfg_attr(not(feature = "tracing"), allow(dead_code))]

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

/// What a hidden secret is shown as.
pub const HIDDEN: &str = "***";

/// Secrets shorter than this are not hidden: replacing every `ab` would garble every line.
const MIN_SECRET_CHARS: usize = 3;

/// The secrets to hide, longest first (a secret containing another is replaced whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// Whether [`SECRETS`] holds any: a line is not searched otherwise.
static ANY: AtomicBool = AtomicBool::new(false);

/// Hides `secret` from every log line and console trace [`init`](super::init) writes for the
/// rest of the process: each occurrence is written as `***`. Secrets shorter than three
/// characters are not hidden (they would garble every line). Each distinct secret is kept
/// for the life of the process.
///
/// Only output written by `init`'s writer is covered: a subscriber of the application's own
/// (or [`layer`](super::layer) composed with one) writes what it is given.
pub fn hide(secret: &str) {
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    if secrets.iter().any(|known| known == secret) {
        return;
    }
    secrets.push(secret.to_owned());
    secrets.sort_by_key(|known| std::cmp::Reverse(known.len()));
    ANY.store(true, Ordering::Release);
}

/// Hides the password of `url` (`scheme://user:password@host...`), as written and
/// percent-decoded (the form a client sends).
pub(crate) fn hide_url_password(url: &str) {
    if let Some(password) = user_info(url).and_then(|(_, password)| password) {
        hide(password);
        hide(&decoded(password));
    }
}

/// `text` with its `%XX` escapes decoded (a URL's user and password are kept escaped).
pub(crate) fn decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// `url` with its password shown as `***`: `amqp://guest:***@host:5672/%2f`. A URL without
/// a password comes back as it is.
///
/// ```
/// use eventsource_runtime::telemetry::secrets::redact_url;
///
/// assert_eq!(redact_url("nats://es:p%40ss@127.0.0.1:4222"), "nats://es:***@127.0.0.1:4222");
/// assert_eq!(redact_url("postgres://app@db/orders"), "postgres://app@db/orders");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    match user_info(url) {
        Some((user, Some(password))) => {
            // The user info is `user:password`, right after `scheme://`.
            let start = url.find("://").map_or(0, |i| i + 3) + user.len() + 1;
            format!(
                "{}{HIDDEN}{}",
                &url[..start],
                &url[start + password.len()..]
            )
        }
        _ => url.to_owned(),
    }
}

/// The user and the password of `url`'s authority, if it has user info.
fn user_info(url: &str) -> Option<(&str, Option<&str>)> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (info, _host) = authority.rsplit_once('@')?;
    Some(match info.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (info, None),
    })
}

/// Hides what the OTLP settings hold for the collector alone from the log lines: the values
/// of `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]HEADERS` (an API key, `Bearer <token>`) and the
/// password of an endpoint URL. Header values shorter than eight characters are
/// flags (`x-debug=true`), not keys: hiding them would garble every line that says `true`.
pub(crate) fn hide_otlp_secrets(env: &dyn Fn(&str) -> Option<String>) {
    const MIN_HIDDEN_HEADER_CHARS: usize = 8;
    let hide_long = |secret: &str| {
        if secret.chars().count() >= MIN_HIDDEN_HEADER_CHARS {
            hide(secret);
        }
    };
    for signal in ["", "TRACES_", "METRICS_"] {
        if let Some(headers) = env(&format!("OTEL_EXPORTER_OTLP_{signal}HEADERS")) {
            for value in headers
                .split(',')
                .filter_map(|h| h.split_once('='))
                .map(|h| h.1)
            {
                for form in [value.trim().to_owned(), decoded(value.trim())] {
                    hide_long(&form);
                    // `Bearer <token>`: the token alone too.
                    if let Some((_, token)) = form.rsplit_once(' ') {
                        hide_long(token);
                    }
                }
            }
        }
        if let Some(endpoint) = env(&format!("OTEL_EXPORTER_OTLP_{signal}ENDPOINT")) {
            hide_url_password(&endpoint);
        }
    }
}

/// `bytes` (a log line, a rendered trace) with every hidden secret replaced by `***`;
/// borrowed when there is nothing to replace.
pub(crate) fn scrub(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !ANY.load(Ordering::Acquire) {
        return Cow::Borrowed(bytes);
    }
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    let text = String::from_utf8_lossy(bytes);
    if !secrets.iter().any(|secret| text.contains(secret.as_str())) {
        return Cow::Borrowed(bytes);
    }
    let mut text = text.into_owned();
    for secret in secrets.iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), HIDDEN);
        }
    }
    Cow::Owned(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_header_values_and_an_endpoints_password_are_hidden_but_short_flags_are_not() {
        let env = |key: &str| match key {
            "OTEL_EXPORTER_OTLP_HEADERS" => {
                Some("authorization=Bearer%20t0ken-4711-xyz,x-debug=true".into())
            }
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("https://u:endp0int-pw@c:4318".into()),
            _ => None,
        };
        hide_otlp_secrets(&env);
        let line = b"sent Bearer t0ken-4711-xyz to https://u:endp0int-pw@c:4318 (x-debug=true)";
        assert_eq!(
            String::from_utf8_lossy(&scrub(line)),
            "sent *** to https://u:***@c:4318 (x-debug=true)"
        );
    }

    #[test]
    fn urls_show_their_password_as_stars() {
        for (url, shown) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            (
                "postgres://app:p%40ss@db:5432/orders?sslmode=require",
                "postgres://app:***@db:5432/orders?sslmode=require",
            ),
            ("nats://token@host:4222", "nats://token@host:4222"),
            ("nats://host:4222", "nats://host:4222"),
            ("kafka://a:1,b:2", "kafka://a:1,b:2"),
            ("not a url", "not a url"),
            ("amqp://u:@host", "amqp://u:***@host"),
            // An `@` in the path is no user info.
            ("http://host/a@b", "http://host/a@b"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn hidden_secrets_are_scrubbed_in_both_forms_and_short_ones_are_not() {
        hide_url_password("nats://es:pl%40nted-xyz@127.0.0.1:4222");
        hide("ab");
        let line = b"password: Some(\"pl@nted-xyz\") url=nats://es:pl%40nted-xyz@h ab";
        assert_eq!(
            String::from_utf8_lossy(&scrub(line)),
            "password: Some(\"***\") url=nats://es:***@h ab"
        );
        assert!(matches!(scrub(b"nothing to hide"), Cow::Borrowed(_)));
    }
}
