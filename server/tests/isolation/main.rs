//! Multi-user isolation and abuse limits (issue 14): one test binary, a module per area.
#[path = "../common.rs"]
mod common;
mod credentials;
mod flows_net;
mod flows_scope;
mod limits;
mod notify;
