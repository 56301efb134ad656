//! The hooks crate's integration tests, in one binary: each file a module, the shared helpers in `common`.

mod common;

mod delivery;
mod endpoints;
mod inbound;
mod operational;
mod push;
mod sealing;
