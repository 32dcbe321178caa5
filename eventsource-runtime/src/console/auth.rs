//! Who may act: the admin token (a `Bearer` header, compared in constant time), and the
//! checks that refuse cross-site requests before the token is even read.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq as _;

use super::ConsoleError;

/// One admin token, and the label its holder is logged and traced under (never the token).
#[derive(Clone)]
pub(super) struct AdminToken {
    pub(super) label: String,
    pub(super) token: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("label", &self.label)
            .field("token", &"****")
            .finish()
    }
}

/// The client's address, when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()` (the command line is).
#[derive(Debug, Clone, Copy)]
pub(super) struct Remote(pub(super) Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(address.map(|info| info.0)))
    }
}

/// Refuses a request another site's page made the browser send: `Sec-Fetch-Site` (sent by
/// every current browser) must be `same-origin` or `none`, and an `Origin` must name the
/// host the request was sent to.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let refused = |why: &str| {
        ConsoleError::Forbidden(format!(
            "cross-site request refused: {why}; nothing changed"
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if site != "same-origin" && site != "none" {
            return Err(refused(&format!("Sec-Fetch-Site is `{site}`")));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin
            .split_once("://")
            .map_or("", |(_, rest)| rest.trim_end_matches('/'));
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err(refused(&format!("Origin `{origin}` is not this console's")));
        }
    }
    Ok(())
}

/// The label of the token in the `Authorization: Bearer` header, if it is one of `tokens`.
/// Every token is compared, in constant time, whichever matches.
pub(super) fn holder_of<'t>(
    tokens: &'t [AdminToken],
    headers: &HeaderMap,
) -> Result<&'t str, ConsoleError> {
    matching(tokens.iter(), headers).map_err(|refusal| {
        ConsoleError::Unauthorized(match refusal {
            Refusal::NoToken => "this action needs the admin token (`Authorization: Bearer \
                                 TOKEN`; the page asks for it); nothing changed"
                .to_owned(),
            Refusal::Unknown => "the admin token is not this console's; nothing changed".to_owned(),
        })
    })
}

/// Checks a read when reads need a token: a reader's or an admin's.
pub(super) fn may_read(
    readers: &[AdminToken],
    admins: &[AdminToken],
    headers: &HeaderMap,
) -> Result<(), ConsoleError> {
    matching(readers.iter().chain(admins), headers)
        .map(drop)
        .map_err(|refusal| {
            ConsoleError::Unauthorized(match refusal {
                Refusal::NoToken => "this console's reads need a token (`Authorization: \
                                     Bearer TOKEN`; the page asks for it)"
                    .to_owned(),
                Refusal::Unknown => "the token is not one of this console's".to_owned(),
            })
        })
}

/// Why no token matched.
enum Refusal {
    NoToken,
    Unknown,
}

fn matching<'t>(
    tokens: impl Iterator<Item = &'t AdminToken>,
    headers: &HeaderMap,
) -> Result<&'t str, Refusal> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(Refusal::NoToken)?;
    let mut holder = None;
    for candidate in tokens {
        if bool::from(candidate.token.as_bytes().ct_eq(given.as_bytes())) {
            holder = Some(candidate.label.as_str());
        }
    }
    holder.ok_or(Refusal::Unknown)
}

/// Refuses a request for a name the console does not answer to (its `Host` header, the port
/// aside): loopback names and addresses always, and those in `allowed`. A page on another
/// name that resolves to the console's address (DNS rebinding) reads nothing. A request
/// without `Host` (no browser sends one) is let through.
pub(super) fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> Result<(), ConsoleError> {
    let Some(host) = headers.get(header::HOST) else {
        return Ok(());
    };
    let host = host.to_str().unwrap_or_default();
    let name = host_name(host).to_ascii_lowercase();
    let loopback = name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || allowed.contains(&name) {
        return Ok(());
    }
    Err(ConsoleError::Forbidden(format!(
        "this console does not answer to `{host}`: it answers to localhost and loopback \
         addresses{} (Console::allowed_hosts; `eventsource console --host NAME`)",
        if allowed.is_empty() {
            String::new()
        } else {
            format!(", {}", allowed.join(", "))
        }
    )))
}

/// `host` without its port: `[::1]:8080` is `[::1]`, `example.com:8080` is `example.com`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}
