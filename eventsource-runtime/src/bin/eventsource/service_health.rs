//! `status --health-url`: a running service's own health report (what its readiness
//! endpoint serves: `HealthReport` as JSON), fetched over plain HTTP.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::exit::CliError;
use crate::output;

/// How long the service has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read (a report of thousands of segments fits).
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// The report the service at `url` (`http://host:port/path`) serves, whatever its status
/// (a readiness endpoint answers 503 while not ready, with the report).
pub async fn fetch(url: &str) -> Result<Value, CliError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        CliError::Usage(format!("health url `{url}`: give http://host:port/path"))
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let unreachable = |error: std::io::Error| CliError::Service {
        url: url.to_owned(),
        source: error,
    };
    let answer = tokio::time::timeout(TIMEOUT, async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        // HTTP/1.0: the body comes whole, up to the connection's end (no chunks).
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    })
    .await
    .map_err(|elapsed| unreachable(elapsed.into()))?
    .map_err(unreachable)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default();
    serde_json::from_str(body).map_err(|_| {
        CliError::Usage(format!(
            "the service at {url} answered `{status}` without a health report"
        ))
    })
}

/// The report as text: readiness, then a row per component.
pub fn as_text(url: &str, report: &Value) -> String {
    let ready = if report["ready"] == true {
        "ready"
    } else {
        "not ready"
    };
    let at = report["at"].as_str().unwrap_or("?");
    let mut text = format!("service {url}: {ready} (at {at})\n");
    let components = report["components"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let field = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = components
        .iter()
        .map(|c| {
            let oldest = c["lag"]["oldest_age_seconds"]
                .as_f64()
                .map_or_else(|| "?".to_owned(), output::age);
            vec![
                field(&c["kind"]),
                field(&c["name"]),
                field(&c["state"]),
                field(&c["lease"]),
                field(&c["lag"]["events"]),
                oldest,
                field(&c["parked"]),
                c["last_error"]["message"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        let headers = [
            "KIND",
            "NAME",
            "STATE",
            "LEASE",
            "LAG",
            "OLDEST",
            "PARKED",
            "LAST ERROR",
        ];
        text.push('\n');
        text.push_str(&output::table(&headers, &rows));
    }
    text
}
