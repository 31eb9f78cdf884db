//! Miroir: a Pingora gateway that makes a fleet of Meilisearch nodes look like one server.
//!
//! Meilisearch semantics (configuration, routing, route classes, errors) live in modules free
//! of Pingora types; `proxy`, `server`, `health`, `reload` and `node_client` wire them into
//! Pingora.

pub mod attempts;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod describe;
pub mod error;
pub mod fleet;
pub mod health;
pub mod merge;
pub mod metrics;
pub mod node_client;
pub mod ops;
pub mod proxy;
pub mod reload;
pub mod replicas;
pub mod respond;
pub mod rewrite;
pub mod routes;
pub mod routing;
pub mod server;
pub mod settings;
pub mod shard_tag;
pub mod tasks;
pub mod topology;
pub mod transport;
