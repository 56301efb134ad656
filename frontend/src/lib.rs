//! Browser entry point: cargo-leptos builds this crate to WASM and the page's hydration script calls it.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // What `leptos::mount::hydrate_lazy` does (the crypto lab, the dashboard and the settings pages are
    // lazy routes, split into their own WASM chunks), plus one step: `data-hydrated` is set on <body>
    // only once the whole tree, the lazy route's chunk included, is hydrated. An effect in `App` ran
    // before a lazy route's chunk had loaded, so a click right after it could still be a plain form post.
    // (hydrate_from_async starts Leptos's executor itself.)
    wasm_bindgen_futures::spawn_local(async {
        let handle = leptos::mount::hydrate_from_async(leptos::tachys::dom::body(), app::App).await;
        let _ = leptos::tachys::dom::body().set_attribute("data-hydrated", "true");
        handle.forget();
    });
}
