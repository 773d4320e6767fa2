//! The end-to-end suite, one test binary: a module per area, each starting the real server
//! (`visa_e2e::TestApp`, the harness in `tests/harness.rs`) on a random loopback port and
//! speaking HTTP to it, on the database `VISA_TEST_DATABASE` names. One binary links the
//! server once instead of once per area. Run one area with `cargo test -p visa-e2e <area>::`.

mod accounts;
mod analytics;
mod audit;
mod config;
mod connections;
mod dashboard;
mod dashboard_pages;
mod end_users;
mod envelope;
mod execute_auth;
mod idempotency;
mod keys;
mod mcp;
mod members;
mod metrics;
mod money;
mod money_path;
mod oauth;
mod openai;
mod openai_sdk;
mod openapi_fuzz;
mod providers;
mod sessions;
mod simulation;
mod tls;
mod trust;
mod usage;
mod webhooks;
