//! The same known-answer tests, compiled to WASM and run in headless Chromium
//! (`scripts/test.sh` runs `cargo test -p crypto --features kat --target wasm32-unknown-unknown`).
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn every_known_answer_holds_in_the_browser() {
    assert_eq!(crypto::kat::ALL.len(), 16);
    let failures = crypto::kat::run_all();
    assert!(failures.is_empty(), "{failures:?}");
}

#[wasm_bindgen_test]
fn random_keys_come_from_the_browser() {
    // OsRng goes through crypto.getRandomValues; two keys must differ.
    assert_ne!(crypto::generate_key().hex, crypto::generate_key().hex);
}
