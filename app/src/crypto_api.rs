//! The crypto lab's server side: the same `crypto::lab::run` the browser runs, executed natively so the
//! page can show whether both agree. Also used by the server's JSON endpoint for the Python scripts.

use contract::Problem;
use crypto::lab::LabRequest;
use leptos::prelude::*;

pub use crypto::lab::{LabError, LabResult};

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::api::Kind;
    use auth::AddressRateLimit;
    use crypto::lab::LabOutput;
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// Server-side ceiling for Argon2 in the lab, for hashing and verification alike (a PHC string
    /// carries its own cost): anyone can call it, so it must not be a way to make the server burn
    /// 256 MiB and ten passes per request.
    pub const SERVER_MAX_ARGON2_KIB: u32 = 65_536;
    pub const SERVER_MAX_ARGON2_T: u32 = 4;

    /// How long a request waits for a computation permit before it is told to come back later.
    pub const PERMIT_WAIT: Duration = Duration::from_secs(2);

    /// The one way into the lab on the server, for `POST /api/crypto` and the page's server function
    /// alike, so every method (and any added later) pays the same: the Argon2 ceiling before any work,
    /// then the per-address limit, then one of a few permits (waiting at most [`PERMIT_WAIT`]), then a
    /// blocking thread.
    #[derive(Clone)]
    pub struct LabGate {
        per_address: Arc<AddressRateLimit>,
        permits: Arc<Semaphore>,
    }

    impl LabGate {
        /// `concurrency` computations at once (at least one); `per_address` counts every request.
        pub fn new(per_address: AddressRateLimit, concurrency: usize) -> Self {
            LabGate { per_address: Arc::new(per_address), permits: Arc::new(Semaphore::new(concurrency.max(1))) }
        }

        /// The computation permits (a test holds them all to see the 503).
        pub fn permits(&self) -> Arc<Semaphore> {
            self.permits.clone()
        }

        /// A crypto failure or a cost over the ceiling is a 422 problem (data the page compares with
        /// the browser's); too many requests from this address a 429, no permit in time a 503, both
        /// with `retry_after`.
        pub async fn run(&self, req: LabRequest, client: Option<IpAddr>) -> Result<LabOutput, Problem> {
            within_ceiling(&req)?;
            match self.per_address.check(client).await {
                Ok(Ok(())) => {}
                Ok(Err(wait)) => {
                    let secs = wait.as_secs().max(1);
                    return Err(Problem::new(
                        Kind::TooManyRequests,
                        "rate_limited",
                        format!("Too many crypto lab requests from your address. Try again in {secs} seconds."),
                    )
                    .with_retry_after(secs));
                }
                Err(e) => return Err(Problem::from(e)),
            }
            let permit = match tokio::time::timeout(PERMIT_WAIT, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    tracing::warn!(method = req.method(), "crypto lab busy: no permit within {} s", PERMIT_WAIT.as_secs());
                    return Err(
                        Problem::new(Kind::Unavailable, "busy", "The server's crypto lab is busy. Try again in a moment.").with_retry_after(1)
                    );
                }
            };
            // The permit moves into the blocking task: it stays taken until the work is done, even
            // when the request that asked for it is cancelled.
            let done = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                crypto::lab::run(&req).map_err(Problem::from)
            })
            .await;
            match done {
                Ok(result) => result,
                Err(e) => Err(Problem::internal(format!("crypto lab computation failed: {e}"))),
            }
        }
    }

    /// Holds Argon2 hashing and verification to the server's ceiling, reading a PHC string's cost
    /// without hashing anything.
    fn within_ceiling(req: &LabRequest) -> Result<(), Problem> {
        let cost = req.argon2_cost().map_err(Problem::from)?;
        if let Some(c) = cost.filter(|c| c.m_kib > SERVER_MAX_ARGON2_KIB || c.t > SERVER_MAX_ARGON2_T) {
            let what = if matches!(req, LabRequest::Argon2Verify { .. }) { "This PHC string asks" } else { "You asked" };
            return Err(Problem::new(
                Kind::Invalid,
                "invalid_params",
                format!(
                    "The server checks Argon2 up to m = {SERVER_MAX_ARGON2_KIB} KiB and t = {SERVER_MAX_ARGON2_T}. {what} for m = {} KiB, t = {}.",
                    c.m_kib, c.t
                ),
            ));
        }
        Ok(())
    }
}

/// Runs `req` on the server, natively. JSON-encoded: the request is a tagged enum with numbers, which
/// the default URL encoding cannot carry. A crypto failure is an answer (the page compares it with the
/// browser's); a limit is a refusal with its status (429, 503) and `Retry-After` (set by the server
/// from the problem). A fixed URL beside
/// `/api/crypto`, so nginx's `limit_req` for the lab names both.
#[server(endpoint = "crypto/lab", input = leptos::server_fn::codec::Json)]
pub async fn lab_on_server(req: LabRequest) -> Result<LabResult, Problem> {
    let services = crate::api::ssr::require_services()?;
    match services.lab.run(req, crate::api::ssr::client_addr()).await {
        Ok(out) => Ok(Ok(out)),
        Err(p) if p.kind() == contract::Kind::Invalid => Ok(Err(p)),
        Err(p) => Err(p),
    }
}
