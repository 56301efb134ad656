//! Browser entry point: cargo-leptos builds this crate to WASM and the page's hydration script calls it.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // hydrate_lazy: the crypto lab and the dashboard are lazy routes (split into their own WASM chunks).
    leptos::mount::hydrate_lazy(app::App);
}
