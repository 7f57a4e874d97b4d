//! End-to-end tests: the services run in-process on port 0 against real NATS and PostgreSQL,
//! and are driven through their gRPC clients and NATS, as users and other services would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic loudly

mod helpers;

mod audit;
mod auth;
mod complaints;
mod consumer;
mod consumer_filter;
mod deploy;
mod faults;
mod insight;
mod intake_lifecycle;
mod intake_list;
mod intake_register;
mod outbox;
mod retention;
mod routing;
mod sla;
mod trace;
