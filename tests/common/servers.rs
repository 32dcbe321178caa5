//! The servers the tests use, asked for one way: [`Server::address`] is the address in the
//! server's variable, or `None` after a `{test}: skipped: ...` line; when CI requires the
//! server (`EVENTSOURCE_REQUIRE_*=1`), a missing one fails the test instead of skipping it.
#![allow(dead_code)]

use std::io::Write as _;

/// A server the tests reach through a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `DATABASE_URL`.
    Postgres,
    /// `EVENTSOURCE_AMQP_URL`.
    RabbitMq,
    /// `EVENTSOURCE_KAFKA_BROKERS`.
    Kafka,
    /// `EVENTSOURCE_NATS_URL`.
    Nats,
}

impl Server {
    /// The variable holding the server's address.
    pub const fn variable(self) -> &'static str {
        match self {
            Self::Postgres => "DATABASE_URL",
            Self::RabbitMq => "EVENTSOURCE_AMQP_URL",
            Self::Kafka => "EVENTSOURCE_KAFKA_BROKERS",
            Self::Nats => "EVENTSOURCE_NATS_URL",
        }
    }

    /// The variable that, set to `1`, makes the server's tests fail rather than skip.
    pub const fn required_by(self) -> &'static str {
        match self {
            Self::Postgres => "EVENTSOURCE_REQUIRE_POSTGRES",
            Self::RabbitMq => "EVENTSOURCE_REQUIRE_RABBITMQ",
            Self::Kafka => "EVENTSOURCE_REQUIRE_KAFKA",
            Self::Nats => "EVENTSOURCE_REQUIRE_NATS",
        }
    }

    /// The server's address, or `None` (with a visible `skipped:` line) when its variable is
    /// not set and the server is not required.
    pub fn address(self, test: &str) -> Option<String> {
        match std::env::var(self.variable()) {
            Ok(address) if !address.trim().is_empty() => Some(address),
            _ => {
                self.skip(test, &format!("{} not set", self.variable()));
                None
            }
        }
    }

    /// Says that `test` is skipped and `why`, or fails it when the server is required.
    pub fn skip(self, test: &str, why: &str) {
        skip(test, why, self.required_by());
    }
}

/// Says on stderr that `test` is skipped and `why` (in one write, past the harness's capture,
/// so that parallel tests do not interleave), or fails it when `required_by` is `1`.
pub fn skip(test: &str, why: &str, required_by: &str) {
    assert!(
        std::env::var(required_by).as_deref() != Ok("1"),
        "{test}: {required_by}=1 but {why}; the test must run"
    );
    let line = format!("{test}: skipped: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}
