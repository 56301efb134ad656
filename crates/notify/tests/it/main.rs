//! The notify crate's integration tests, in one binary: each file a module, the shared helpers in `common`.

mod common;

mod clock;
mod crash;
mod email;
mod embedded;
mod isolation;
mod priority;
mod push;
mod redis;
mod retention;
mod routing;
mod sms;
mod webhook_retry;
