//! The browser side of the crypto lab: calls into the lab's own WASM module (`crates/crypto-wasm`),
//! loaded on first use from `CRYPTO_WASM_BASE` (set at build time by `scripts/build.sh` to the
//! module's content-hashed folder under `/pkg/`, so it can be cached forever).

use crypto::lab::{LabError, LabRequest, LabResult};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

pub const BASE: &str = match option_env!("CRYPTO_WASM_BASE") {
    Some(b) => b,
    None => "/pkg/crypto/",
};

#[wasm_bindgen(module = "/src/crypto_loader.js")]
extern "C" {
    #[wasm_bindgen(js_name = labRun)]
    fn lab_run_js(base: &str, request_json: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = labRunInWorker)]
    fn lab_run_in_worker_js(base: &str, request_json: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = cancelWorker)]
    pub fn cancel_worker();
    #[wasm_bindgen(js_name = benchSha256)]
    fn bench_sha256_js(base: &str, data: &[u8], min_ms: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = benchAes256Gcm)]
    fn bench_aes256gcm_js(base: &str, data: &[u8], min_ms: f64) -> js_sys::Promise;
}

/// Why a browser computation gave no result.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeError {
    Cancelled,
    /// The module could not be loaded or answered nonsense.
    Failed(String),
}

fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|| format!("{e:?}"))
}

async fn answer(promise: js_sys::Promise) -> Result<LabResult, BridgeError> {
    let value = JsFuture::from(promise).await.map_err(|e| {
        let m = js_message(&e);
        if m == "cancelled" {
            BridgeError::Cancelled
        } else {
            BridgeError::Failed(m)
        }
    })?;
    let json = value.as_string().ok_or_else(|| BridgeError::Failed("the crypto module answered no text".into()))?;
    serde_json::from_str(&json).map_err(|e| BridgeError::Failed(format!("the crypto module answered invalid JSON: {e}")))
}

fn encode(req: &LabRequest) -> Result<String, BridgeError> {
    serde_json::to_string(req).map_err(|e| BridgeError::Failed(e.to_string()))
}

/// Runs `req` on the page's thread (fast methods).
pub async fn lab_run(req: &LabRequest) -> Result<LabResult, BridgeError> {
    answer(lab_run_js(BASE, &encode(req)?)).await
}

/// Runs `req` in a Web Worker (slow methods); [`cancel_worker`] ends it with `Cancelled`.
pub async fn lab_run_in_worker(req: &LabRequest) -> Result<LabResult, BridgeError> {
    answer(lab_run_in_worker_js(BASE, &encode(req)?)).await
}

/// The lab's failure shape for a bridge failure, to show where a result would be.
pub fn as_lab_error(e: BridgeError) -> LabError {
    match e {
        BridgeError::Cancelled => LabError::new(contract::Kind::BadRequest, "cancelled", "Cancelled."),
        BridgeError::Failed(m) => LabError::new(contract::Kind::Unavailable, "browser", format!("The crypto module failed in this browser: {m}")),
    }
}

async fn bench(promise: js_sys::Promise) -> Result<(u32, f64), String> {
    let v = JsFuture::from(promise).await.map_err(|e| js_message(&e))?;
    let a = js_sys::Float64Array::new(&v).to_vec();
    match a.as_slice() {
        [n, ms] => Ok((*n as u32, *ms)),
        _ => Err("the crypto module answered no measurement".into()),
    }
}

/// SHA-256 over `data` back to back for `min_ms`: (iterations, elapsed ms).
pub async fn bench_sha256(data: &[u8], min_ms: f64) -> Result<(u32, f64), String> {
    bench(bench_sha256_js(BASE, data, min_ms)).await
}

/// AES-256-GCM encryption of `data` back to back for `min_ms`: (iterations, elapsed ms).
pub async fn bench_aes256gcm(data: &[u8], min_ms: f64) -> Result<(u32, f64), String> {
    bench(bench_aes256gcm_js(BASE, data, min_ms)).await
}
