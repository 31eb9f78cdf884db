//! Shared test support: a Meilisearch-compatible test node, a tiny HTTP codec, and a
//! launcher for the real `miroir` binary.

#![allow(dead_code)]

pub mod compare;
pub mod corpus;
pub mod data;
pub mod fake_delete;
pub mod fake_export_job;
pub mod fake_export_request;
pub mod fake_features;
pub mod fake_filter;
pub mod fake_keys;
pub mod fake_meili;
pub mod fake_multi;
pub mod fake_node;
pub mod fake_payload;
pub mod fake_search;
pub mod fake_settings;
pub mod fake_swap;
pub mod fake_task_list;
pub mod fake_tenant;
pub mod gateway;
pub mod http;
pub mod meili;
pub mod meili_api;
pub mod readers;
pub mod rebalance_fleet;
pub mod redis;
pub mod webhook_receiver;
