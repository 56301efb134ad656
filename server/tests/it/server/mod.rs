//! Router suites (`oneshot` over a fresh database), the CLI as an operator runs it, and the
//! multi-user isolation suite.

mod api;
mod bad_input;
mod cli;
mod crypto_api;
mod isolation;
mod live;
mod login_and_sessions;
mod notifications;
mod notify_cli;
mod problems;
mod push;
mod readyz;
mod retention;
mod shared_sessions;
mod signup_and_password;
