//! The server's integration tests, in one binary (twelve binaries of ~125 MB each were linked one by
//! one on every change): the helpers in `common`, every suite under `server`, a module per area. The
//! test command's PostgreSQL pass selects them by that prefix (`-- server::`).

mod common;
mod server;
