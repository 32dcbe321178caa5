//! The NATS JetStream bus against a real server (feature `nats`).
