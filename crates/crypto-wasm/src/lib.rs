//! `crates/crypto` for the browser, as a WASM module of its own. The app loads it on first use (the
//! `/crypto` page), so signing in never downloads the crypto code; Argon2 runs it inside a Web Worker
//! (`worker.js`) so the page stays responsive and the hash can be cancelled. Built by
//! `scripts/build.sh` with `opt-level = 3`: here speed matters more than bytes.
//!
//! Only strings and byte arrays cross the JavaScript boundary: a JSON `LabRequest` in, a JSON
//! `LabResult` out, exactly what the server's `crypto::lab::run` gives for the same request.

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `performance.now()` of the window or the worker, whichever runs this module.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Runs one lab request (JSON) and answers the `LabResult` as JSON.
#[wasm_bindgen]
pub fn lab_run(request_json: &str) -> String {
    crypto::lab::run_json(request_json)
}

/// Hashes `data` with SHA-256 back to back for at least `min_ms`; answers `[iterations, elapsed ms]`.
#[wasm_bindgen]
pub fn bench_sha256(data: &[u8], min_ms: f64) -> Vec<f64> {
    repeat_for(min_ms, || {
        std::hint::black_box(crypto::sha256_bytes(std::hint::black_box(data)));
    })
}

/// Encrypts `data` with AES-256-GCM (fixed key and nonce: a throughput test and nothing else) back to
/// back for at least `min_ms`; answers `[iterations, elapsed ms]`.
#[wasm_bindgen]
pub fn bench_aes256gcm(data: &[u8], min_ms: f64) -> Vec<f64> {
    let (key, nonce) = ([7u8; 32], [9u8; 12]);
    repeat_for(min_ms, || {
        let _ = std::hint::black_box(crypto::aes256gcm_encrypt_bytes(&key, &nonce, std::hint::black_box(data), b""));
    })
}

fn repeat_for(min_ms: f64, mut op: impl FnMut()) -> Vec<f64> {
    let start = performance_now();
    let mut n = 0u32;
    while n == 0 || performance_now() - start < min_ms {
        op();
        n += 1;
    }
    vec![n as f64, performance_now() - start]
}
