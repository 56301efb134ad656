//! Multi-user isolation and abuse limits (issue 14): one test binary, a module per area.
#[path = "../common.rs"]
mod common;
mod notify;
