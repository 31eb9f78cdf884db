//! Miroir: a Pingora gateway that makes a fleet of Meilisearch nodes look like one server.

pub mod config;
pub mod error;
pub mod routes;
pub mod routing;
pub mod topology;
