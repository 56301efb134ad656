//! The `<head>` tags for the app's assets: the stylesheet and the script that loads and hydrates the
//! WASM. They are what Leptos's `HashedStylesheet` and `HydrationScripts` render, with the hashed file
//! names and the lazy routes' split manifest worked out once per process: those components resolve the
//! executable's path and read `hash.txt` on every render, about a tenth of a small signed-in page's
//! time in a profile. `hydration_script.js` is Leptos 0.8's own loader, copied.

use leptos::prelude::*;

/// Rendered on the server only: the client hydrates `<body>`, never `<head>`.
#[component]
pub fn AssetTags(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        let loader = ssr::loader(&options);
        if let Some(manifest) = &loader.split_manifest {
            // Lazy routes look it up to preload their chunks.
            provide_context(manifest.clone());
        }
        let nonce = leptos::nonce::use_nonce();
        view! {
            <link rel="stylesheet" id="leptos" href=loader.stylesheet_href.clone()/>
            <link rel="modulepreload" href=loader.js_href.clone() crossorigin=nonce.clone()/>
            <link rel="preload" href=loader.wasm_href.clone() r#as="fetch" r#type="application/wasm" crossorigin=nonce.clone()/>
            <script type="module" nonce=nonce>{loader.script.clone()}</script>
        }
    }
    #[cfg(not(feature = "ssr"))]
    {
        let _ = options;
    }
}

#[cfg(feature = "ssr")]
mod ssr {
    use leptos::config::LeptosOptions;
    use leptos::WasmSplitManifest;
    use std::collections::HashMap;
    use std::sync::OnceLock;

    pub struct Loader {
        pub js_href: String,
        pub wasm_href: String,
        pub script: String,
        pub split_manifest: Option<WasmSplitManifest>,
        pub stylesheet_href: String,
    }

    /// The same names and script as `HashedStylesheet` and `HydrationScripts` (leptos 0.8) work out, once.
    pub fn loader(options: &LeptosOptions) -> &'static Loader {
        static LOADER: OnceLock<Loader> = OnceLock::new();
        LOADER.get_or_init(|| {
            let hashes = options
                .hash_files
                .then(|| {
                    let path = std::env::current_exe().ok()?.parent()?.join(options.hash_file.as_ref());
                    let text = std::fs::read_to_string(&path);
                    if text.is_err() {
                        tracing::error!(path = %path.display(), "file hashing is on but the hash file cannot be read");
                    }
                    text.ok()
                })
                .flatten();
            build(options, hashes.as_deref())
        })
    }

    /// [`loader`] from `hash.txt`'s text (`None` without file hashing or without the file).
    pub fn build(options: &LeptosOptions, hash_text: Option<&str>) -> Loader {
        let hashes = hash_text.map(parse_hashes).unwrap_or_default();
        let named = |kind: &str| hashes.get(kind).map(|h| format!("{}.{h}", options.output_name));
        let js = named("js").unwrap_or_else(|| options.output_name.to_string());
        // wasm-bindgen's default file name, unless cargo-leptos named the output.
        let unnamed_wasm = if option_env!("LEPTOS_OUTPUT_NAME").is_none() && !options.hash_files { "_bg" } else { "" };
        let wasm = named("wasm").unwrap_or_else(|| format!("{}{unnamed_wasm}", options.output_name));
        let pkg = options.site_pkg_dir.to_string();
        let manifest_file =
            hashes.get("manifest").map_or_else(|| "__wasm_split_manifest.json".to_string(), |h| format!("__wasm_split_manifest.{h}.json"));
        let split_js = hashes.get("split").map_or_else(|| "__wasm_split.______________________.js".to_string(), |h| format!("__wasm_split.{h}.js"));
        let split_manifest = std::fs::read_to_string(std::path::Path::new(options.site_root.as_ref()).join(&pkg).join(manifest_file))
            .ok()
            .and_then(|text| serde_json::from_str::<HashMap<String, Vec<String>>>(&text).ok())
            .map(|preloads| WasmSplitManifest(leptos::prelude::ArcStoredValue::new((format!("/{pkg}"), preloads, split_js))));
        Loader {
            js_href: format!("/{pkg}/{js}.js"),
            wasm_href: format!("/{pkg}/{wasm}.wasm"),
            script: format!("{}(\"\", {pkg:?}, {js:?}, {wasm:?}, false);", include_str!("hydration_script.js")),
            split_manifest,
            stylesheet_href: format!("/{pkg}/{}.css", named("css").unwrap_or_else(|| options.output_name.to_string())),
        }
    }

    /// `hash.txt`'s `kind: hash` lines.
    pub fn parse_hashes(text: &str) -> HashMap<String, String> {
        text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use leptos::prelude::ReadValue;

        #[test]
        fn hash_lines_are_read_by_kind() {
            let h = parse_hashes("js: abc\nwasm:def \n\ncss: 123\nmanifest: m1\n");
            assert_eq!((h["js"].as_str(), h["wasm"].as_str(), h["css"].as_str(), h["manifest"].as_str()), ("abc", "def", "123", "m1"));
            assert_eq!(h.len(), 4);
        }

        fn options(site_root: &str, hash_files: bool) -> LeptosOptions {
            LeptosOptions::builder().output_name("ie").site_root(site_root).site_pkg_dir("pkg").hash_files(hash_files).build()
        }

        /// With hashed files, each asset gets its own hash (as cargo-leptos writes `hash.txt`), and the
        /// lazy routes' split manifest is read from the hashed manifest's file.
        #[test]
        fn hashed_names_and_the_split_manifest_come_from_the_hash_file() {
            let site = std::env::temp_dir().join(format!("assets-test-{}", std::process::id()));
            std::fs::create_dir_all(site.join("pkg")).unwrap();
            std::fs::write(site.join("pkg/__wasm_split_manifest.m9.json"), r#"{"route_a": ["chunk_1", "split_a"]}"#).unwrap();
            let l = build(&options(site.to_str().unwrap(), true), Some("js: j1\nwasm: w2\ncss: c3\nmanifest: m9\nsplit: s4\n"));
            std::fs::remove_dir_all(&site).unwrap();
            assert_eq!(
                (l.js_href.as_str(), l.wasm_href.as_str(), l.stylesheet_href.as_str()),
                ("/pkg/ie.j1.js", "/pkg/ie.w2.wasm", "/pkg/ie.c3.css")
            );
            assert!(l.script.ends_with(r#"("", "pkg", "ie.j1", "ie.w2", false);"#), "{}", l.script);
            assert!(l.script.contains("mod.hydrate()"), "Leptos's loader");
            let manifest = l.split_manifest.expect("the manifest is read");
            let read = manifest.0.try_read_value().expect("readable");
            let (root, preloads, split_js) = &*read;
            assert_eq!((root.as_str(), split_js.as_str()), ("/pkg", "__wasm_split.s4.js"));
            assert_eq!(preloads["route_a"], ["chunk_1", "split_a"]);
        }

        #[test]
        fn without_hashes_the_names_are_the_output_name() {
            let l = build(&options("/nonexistent-site", true), None);
            assert_eq!((l.js_href.as_str(), l.wasm_href.as_str(), l.stylesheet_href.as_str()), ("/pkg/ie.js", "/pkg/ie.wasm", "/pkg/ie.css"));
            assert!(l.split_manifest.is_none());
        }
    }
}
