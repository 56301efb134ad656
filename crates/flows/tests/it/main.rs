//! The flows crate's integration tests, in one binary: each file a module, the shared helpers in `common`.

mod common;

mod crash;
mod engine;
mod http;
mod isolation;
mod store;
