//! The local broker process a scenario kills and starts again.

use std::net::{SocketAddr, ToSocketAddrs as _};

use crate::processes::BrokerKind;
use crate::server_process::{ServerProcess, listening};

// ---- the broker process -------------------------------------------------------------------

/// The local broker process of `kind` that a test may kill and start again, or `None`
/// (with a visible message) when there is none and none is required
/// (`EVENTSOURCE_REQUIRE_KAFKA=1`, `EVENTSOURCE_REQUIRE_NATS=1`: then it fails).
pub fn local_broker(test: &str, kind: BrokerKind) -> Option<ServerProcess> {
    if kind == BrokerKind::RabbitMq {
        panic!("{test}: no RabbitMQ node is killed here");
    }
    let server = kind.server();
    let variable = server.variable();
    let skip = |why: String| server.skip(test, &why);
    let url = server.address(test)?;
    let Some(addr) = first_addr(&url, kind) else {
        skip(format!("{variable} has no host:port"));
        return None;
    };
    if !listening(addr) {
        skip(format!("nothing listens on {addr}"));
        return None;
    }
    let found = match kind {
        // Apache Kafka as `.ci/run` starts it writes its log in its working directory.
        BrokerKind::Kafka => ServerProcess::find("kafka", is_kafka_broker, addr, None),
        // The binary of `EVENTSOURCE_NATS_SERVER`, when set (the version matrix's).
        _ => ServerProcess::find(
            "nats-server",
            is_nats_server,
            addr,
            Some(std::env::temp_dir().join("eventsource-nats-restart.log")),
        )
        .and_then(|broker| {
            broker.runs_binary_named_by("EVENTSOURCE_NATS_SERVER")?;
            Ok(broker)
        }),
    };
    match found {
        Ok(broker) => Some(broker),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// Whether `argv` is an Apache Kafka node's (`java ... kafka.Kafka <server.properties>`).
pub(super) fn is_kafka_broker(argv: &[String]) -> bool {
    let program = argv[0].rsplit('/').next().unwrap_or_default();
    program == "java" && argv.iter().skip(1).any(|a| a == "kafka.Kafka")
}

pub(super) fn is_nats_server(argv: &[String]) -> bool {
    argv[0].rsplit('/').next().unwrap_or_default() == "nats-server"
}

/// The first `host:port` of a broker list or URL (`kafka://`, `nats://user:password@`),
/// with the broker's default port, resolved.
pub(super) fn first_addr(url: &str, kind: BrokerKind) -> Option<SocketAddr> {
    let first = url.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let host_port = host_port.trim_end_matches('/');
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let with_port = if has_port {
        host_port.to_owned()
    } else {
        let port = if kind == BrokerKind::Kafka {
            9092
        } else {
            4222
        };
        format!("{host_port}:{port}")
    };
    with_port.to_socket_addrs().ok()?.next()
}
