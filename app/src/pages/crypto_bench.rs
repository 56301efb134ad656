//! "Speed in your browser": our WASM SHA-256 and AES-256-GCM against the browser's own WebCrypto, at
//! 64 B, 1 KiB and 1 MiB, measured in the visitor's browser. Shown as a bar chart with the same
//! figures in a table (the chart's text alternative).

use leptos::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub algorithm: &'static str,
    pub size: usize,
    pub ours_mb_s: f64,
    pub webcrypto_mb_s: f64,
}

pub const SIZES: [usize; 3] = [64, 1024, 1024 * 1024];

fn size_label(size: usize) -> String {
    match size {
        s if s >= 1024 * 1024 => format!("{} MiB", s / (1024 * 1024)),
        s if s >= 1024 => format!("{} KiB", s / 1024),
        s => format!("{s} B"),
    }
}

#[component]
pub fn BenchPanel() -> impl IntoView {
    let rows = RwSignal::new(Vec::<BenchRow>::new());
    let running = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let run = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if running.get_untracked() {
                return;
            }
            running.set(true);
            error.set(None);
            rows.set(Vec::new());
            leptos::task::spawn_local(async move {
                if let Err(e) = measure::run_all(move |row| rows.update(|r| r.push(row))).await {
                    error.set(Some(e));
                }
                running.set(false);
            });
        }
    };
    view! {
        <section class="card" aria-labelledby="bench-heading">
            <div class="card-header">
                <h2 id="bench-heading">"Speed in your browser"</h2>
                <button type="button" class="btn btn-secondary" data-testid="run-bench" on:click=run disabled=move || running.get()>
                    {move || if running.get() { "Measuring…" } else { "Run benchmark" }}
                </button>
            </div>
            <p class="muted">"Throughput in MB/s of our WebAssembly code and of this browser's WebCrypto, each measured for a quarter of a second per size."</p>
            <p class="alert alert-error" role="alert" hidden=move || error.get().is_none()>{move || error.get()}</p>
            {move || {
                let rows = rows.get();
                if rows.is_empty() {
                    return view! { <p class="empty">{move || if running.get() { "Measuring…" } else { "Not measured yet." }}</p> }.into_any();
                }
                view! { <BenchChart rows=rows.clone()/> <BenchTable rows=rows/> }.into_any()
            }}
        </section>
    }
}

#[component]
fn BenchChart(rows: Vec<BenchRow>) -> impl IntoView {
    let max = rows.iter().flat_map(|r| [r.ours_mb_s, r.webcrypto_mb_s]).fold(1.0_f64, f64::max);
    let bar_h = 14.0;
    let row_h = 2.0 * bar_h + 14.0;
    let label_w = 150.0;
    let width = 600.0;
    let height = rows.len() as f64 * row_h + 30.0;
    let scale = move |v: f64| (v / max) * (width - label_w - 70.0);
    view! {
        <svg class="chart" viewBox=format!("0 0 {width} {height}") role="img" aria-label="Bar chart of the throughput figures listed in the table below">
            <g class="legend">
                <rect x=label_w y="2" width="10" height="10" class="bar-1"/>
                <text x=label_w + 14.0 y="11">"Our WASM"</text>
                <rect x=label_w + 100.0 y="2" width="10" height="10" class="bar-2"/>
                <text x=label_w + 114.0 y="11">"WebCrypto"</text>
            </g>
            {rows.into_iter().enumerate().map(|(i, r)| {
                let y = 24.0 + i as f64 * row_h;
                view! {
                    <text x="0" y=y + bar_h + 3.0 class="chart-label">{format!("{} {}", r.algorithm, size_label(r.size))}</text>
                    <rect x=label_w y=y width=scale(r.ours_mb_s).max(1.0) height=bar_h class="bar-1"/>
                    <text x=label_w + scale(r.ours_mb_s) + 4.0 y=y + bar_h - 3.0 class="chart-value">{format!("{:.1}", r.ours_mb_s)}</text>
                    <rect x=label_w y=y + bar_h width=scale(r.webcrypto_mb_s).max(1.0) height=bar_h class="bar-2"/>
                    <text x=label_w + scale(r.webcrypto_mb_s) + 4.0 y=y + 2.0 * bar_h - 3.0 class="chart-value">{format!("{:.1}", r.webcrypto_mb_s)}</text>
                }
            }).collect_view()}
        </svg>
    }
}

#[component]
fn BenchTable(rows: Vec<BenchRow>) -> impl IntoView {
    view! {
        <table class="table" data-testid="bench-table">
            <caption class="visually-hidden">"Throughput in MB/s"</caption>
            <thead>
                <tr><th scope="col">"Algorithm"</th><th scope="col">"Size"</th><th scope="col">"Our WASM (MB/s)"</th><th scope="col">"WebCrypto (MB/s)"</th><th scope="col">"Ours ÷ WebCrypto"</th></tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|r| view! {
                    <tr>
                        <td>{r.algorithm}</td>
                        <td>{size_label(r.size)}</td>
                        <td data-testid="ours">{format!("{:.2}", r.ours_mb_s)}</td>
                        <td data-testid="webcrypto">{format!("{:.2}", r.webcrypto_mb_s)}</td>
                        <td>{format!("{:.2}", r.ours_mb_s / r.webcrypto_mb_s.max(f64::MIN_POSITIVE))}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[cfg(feature = "hydrate")]
mod measure {
    use super::{BenchRow, SIZES};
    use js_sys::{Array, Object, Reflect, Uint8Array};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    const MEASURE_MS: f64 = 250.0;

    fn now() -> f64 {
        web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
    }

    fn mb_s(bytes: usize, iterations: u32, ms: f64) -> f64 {
        bytes as f64 * iterations as f64 / (ms.max(0.001) / 1000.0) / 1e6
    }

    /// Lets the page paint between measurements.
    async fn next_tick() {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
            }
        });
        let _ = JsFuture::from(promise).await;
    }

    async fn theirs(op: impl Fn() -> Result<js_sys::Promise, JsValue>) -> Result<(u32, f64), JsValue> {
        let start = now();
        let mut n = 0;
        while n == 0 || now() - start < MEASURE_MS {
            JsFuture::from(op()?).await?;
            n += 1;
        }
        Ok((n, now() - start))
    }

    pub async fn run_all(mut report: impl FnMut(BenchRow)) -> Result<(), String> {
        let fail = |e: JsValue| format!("WebCrypto failed: {e:?}");
        let subtle = web_sys::window()
            .ok_or("no window")?
            .crypto()
            .map_err(|_| "WebCrypto is not available (it needs a secure context: HTTPS or localhost)".to_string())?
            .subtle();
        // The same fixed key and nonce as the module's own loop: fine for a throughput test, nowhere else.
        let key = [7u8; 32];
        let nonce = [9u8; 12];
        let key_js = Uint8Array::from(&key[..]);
        let usages = Array::of1(&JsValue::from_str("encrypt"));
        let crypto_key: web_sys::CryptoKey = JsFuture::from(subtle.import_key_with_str("raw", &key_js, "AES-GCM", false, &usages).map_err(fail)?)
            .await
            .map_err(fail)?
            .unchecked_into();
        let params = Object::new();
        Reflect::set(&params, &"name".into(), &"AES-GCM".into()).map_err(fail)?;
        Reflect::set(&params, &"iv".into(), &Uint8Array::from(&nonce[..])).map_err(fail)?;

        for size in SIZES {
            let data = vec![0x5au8; size];
            let data_js = Uint8Array::from(&data[..]);

            // Ours loops inside the lab's WASM module (one call per measurement, so the JavaScript
            // boundary is not what is measured); WebCrypto is awaited per call, as a page would.
            next_tick().await;
            let (n, ms) = crate::crypto_wasm::bench_sha256(&data, MEASURE_MS).await?;
            let ours_sha = mb_s(size, n, ms);
            let (n, ms) = theirs(|| subtle.digest_with_str_and_js_u8_array("SHA-256", &data_js)).await.map_err(fail)?;
            report(BenchRow { algorithm: "SHA-256", size, ours_mb_s: ours_sha, webcrypto_mb_s: mb_s(size, n, ms) });

            next_tick().await;
            let (n, ms) = crate::crypto_wasm::bench_aes256gcm(&data, MEASURE_MS).await?;
            let ours_gcm = mb_s(size, n, ms);
            let (n, ms) = theirs(|| subtle.encrypt_with_object_and_js_u8_array(&params, &crypto_key, &data_js)).await.map_err(fail)?;
            report(BenchRow { algorithm: "AES-256-GCM", size, ours_mb_s: ours_gcm, webcrypto_mb_s: mb_s(size, n, ms) });
        }
        Ok(())
    }
}
