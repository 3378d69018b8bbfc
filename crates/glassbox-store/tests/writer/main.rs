//! The telemetry writer's delivery logic (batching, retries, spool, replay, overflow,
//! shutdown) against an in-memory fake backend that can go down, fail, lie and be slow. The
//! real backends have their own tests; this binary is only about getting rows to one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batching;
mod overflow;
mod retries;
mod shutdown;
mod spool;
mod support;
