pub mod crypto;
pub mod crypto_bench;
pub mod login;
pub mod notifications;
pub mod settings;
pub mod not_found;
pub mod success;
pub mod workflows;
