//! The integration tests, one binary: the support code is built once and tests of all files
//! share the test threads.

mod support;

mod aliases;
mod batches;
mod cache;
mod check_config;
mod crash;
mod dashboard;
mod differential;
mod facets;
mod failover;
mod fake_export;
mod fake_routes;
mod gateway_basics;
mod handoff;
mod insertion_order;
mod keys;
mod lone_path;
mod node_features;
mod read_your_writes;
mod real_aliases;
mod real_meilisearch;
mod rebalance;
mod recorded_merges;
mod reload;
mod sdk;
mod security;
mod shared_aliases;
mod shared_rebalance;
mod shared_state;
mod slow_clients;
mod task_deletion;
mod task_history;
mod upgrade;
mod webhooks;
mod writes;
