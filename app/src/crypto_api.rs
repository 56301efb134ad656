//! The crypto lab's server side: the same `crypto::lab::run` the browser runs, executed natively so the
//! page can show whether both agree. Also used by the server's JSON endpoint for the Python scripts.

use crypto::lab::LabRequest;
use leptos::prelude::*;

pub use crypto::lab::{LabError, LabResult};

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use std::sync::OnceLock;
    use tokio::sync::Semaphore;

    /// Server-side ceiling for Argon2 in the lab: anyone can call it, so it must not be a way to make
    /// the server burn 256 MiB and ten passes per request.
    pub const SERVER_MAX_ARGON2_KIB: u32 = 65_536;
    pub const SERVER_MAX_ARGON2_T: u32 = 4;

    /// At most two lab computations at once, each on a blocking thread.
    fn permits() -> &'static Semaphore {
        static SEM: OnceLock<Semaphore> = OnceLock::new();
        SEM.get_or_init(|| Semaphore::new(2))
    }

    pub async fn run_on_server(req: LabRequest) -> LabResult {
        if let LabRequest::Argon2id { m_kib, t, .. } = &req {
            if *m_kib > SERVER_MAX_ARGON2_KIB || *t > SERVER_MAX_ARGON2_T {
                return Err(LabError {
                    code: "invalid_params".into(),
                    message: format!(
                        "The server checks Argon2 up to m = {SERVER_MAX_ARGON2_KIB} KiB and t = {SERVER_MAX_ARGON2_T}."
                    ),
                });
            }
        }
        let _permit = permits().acquire().await.map_err(|_| LabError { code: "busy".into(), message: "Server is shutting down.".into() })?;
        tokio::task::spawn_blocking(move || crypto::lab::run(&req).map_err(LabError::from))
            .await
            .unwrap_or_else(|_| Err(LabError { code: "internal".into(), message: "The computation failed.".into() }))
    }
}

/// Runs `req` on the server, natively. JSON-encoded: the request is a tagged enum with numbers, which
/// the default URL encoding cannot carry.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn lab_on_server(req: LabRequest) -> Result<LabResult, ServerFnError> {
    Ok(ssr::run_on_server(req).await)
}
