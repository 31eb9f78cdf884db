//! Miroir: a Pingora gateway that makes a fleet of Meilisearch nodes look like one server.
//!
//! The map, from the edge inwards:
//!
//! - Pingora at the edge: `server` (assembles the services: proxy, metrics listener, health
//!   checks, reload, task refresher), `edge` (client connections: caps and timeouts),
//!   `proxy` (the `ProxyHttp` filter chain), `node_client`
//!   (kept-alive connections to the nodes, the [`transport::Transport`] in production),
//!   `armed_timer` (no runtime wake-up per request deadline), `rehome` (a client connection
//!   driven by the thread that serves it), `health`
//!   (background checks), `reload` (SIGHUP).
//! - The gateway's own operations, without Pingora types: `ops` (each served route: ask the
//!   nodes, hand the answers to `merge`, reply), `tasks` (gateway tasks, their store, hinted
//!   handoff, the refresher's round), `auth` (key checks for gateway routes).
//! - Reaching the nodes: `fleet` (the shared state bundle), `cluster` (one request's view of
//!   it), `replicas` (which replica serves), `attempts` (failover and hedging of reads),
//!   `transport` (the seam to the network, scripted in tests).
//! - Meilisearch semantics, plain code: `config`, `topology`, `routing` (shard hash and
//!   rendezvous owners), `routes` (the endpoint table and how each is served), `merge`
//!   (every merge of node answers), `split` (document batches split by shard),
//!   `shard_tag` (the tag and everything that hides it), `error`, `query_string`.
//! - Small pieces: `metrics`, `respond` (a reply of the gateway's own), `describe`
//!   (`check-config`'s report).

pub mod admin;
pub mod aliases;
pub mod armed_timer;
pub mod attempts;
pub mod auth;
pub mod cache;
pub mod cluster;
pub mod coalesce;
pub mod config;
pub mod describe;
pub mod edge;
pub mod error;
pub mod facet_depth;
pub mod fleet;
pub mod health;
pub mod keys;
pub mod merge;
pub mod metrics;
pub mod node_client;
pub mod ops;
pub mod placement;
pub mod proxy;
pub mod query_string;
pub mod rebalance;
pub mod rehome;
pub mod reload;
pub mod replicas;
pub mod respond;
pub mod routes;
pub mod routing;
pub mod server;
pub mod shard_tag;
pub mod split;
pub mod state;
pub mod swap_gate;
pub mod tasks;
pub mod topology;
pub mod transport;
pub mod webhooks;
