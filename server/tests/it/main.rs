//! The server's integration tests, in one binary: each file a module, the helpers in `common`. (Twelve
//! binaries of ~125 MB each were linked one by one on every change.)

mod common;

mod api;
mod bad_input;
mod cli;
mod crypto_api;
mod isolation;
mod live;
mod login_and_sessions;
mod notifications;
mod notify_cli;
mod readyz;
mod shared_sessions;
mod signup_and_password;
