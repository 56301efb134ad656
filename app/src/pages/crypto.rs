//! `/crypto`: the crypto lab. Every method runs in the browser through the WASM build of
//! `crates/crypto` as you type; "Verify on the server" runs the same crate natively through a server
//! function and shows whether both agree. Public: it handles no account data.

use crypto::lab::{LabOutput, LabRequest};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::crypto_api::{lab_on_server, LabResult};

/// (select value, label, group, id in `crypto::methods()`)
const METHODS: &[(&str, &str, &str, &str)] = &[
    ("sha256", "SHA-256", "One-way", "sha256"),
    ("sha512", "SHA-512", "One-way", "sha512"),
    ("sha3_256", "SHA3-256", "One-way", "sha3-256"),
    ("hmac_sha256", "HMAC-SHA256", "One-way", "hmac-sha256"),
    ("argon2id", "Argon2id (hash a password)", "One-way", "argon2id"),
    ("argon2_verify", "Argon2 (verify a PHC string)", "One-way", "argon2id"),
    ("aes256_gcm_encrypt", "AES-256-GCM encrypt", "Two-way", "aes-256-gcm"),
    ("aes256_gcm_decrypt", "AES-256-GCM decrypt", "Two-way", "aes-256-gcm"),
    ("chacha20_poly1305_encrypt", "ChaCha20-Poly1305 encrypt", "Two-way", "chacha20-poly1305"),
    ("chacha20_poly1305_decrypt", "ChaCha20-Poly1305 decrypt", "Two-way", "chacha20-poly1305"),
    ("ed25519_sign", "Ed25519 sign", "Signature", "ed25519"),
    ("ed25519_verify", "Ed25519 verify", "Signature", "ed25519"),
];

// Fixed starting values so the server-rendered page and the hydrated one agree; "Generate" makes
// random ones in the browser.
const DEMO_KEY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
const DEMO_NONCE: &str = "070000004041424344454647";
const DEMO_SALT: &str = "736f6d6573616c7473616c74";
// RFC 8032 test 1 key pair.
const DEMO_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const DEMO_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[derive(Clone, Copy)]
struct Fields {
    method: RwSignal<String>,
    input: RwSignal<String>,
    hmac_key: RwSignal<String>,
    password: RwSignal<String>,
    salt_hex: RwSignal<String>,
    m_kib: RwSignal<String>,
    t: RwSignal<String>,
    p: RwSignal<String>,
    phc: RwSignal<String>,
    key_hex: RwSignal<String>,
    nonce_hex: RwSignal<String>,
    aad: RwSignal<String>,
    ciphertext_hex: RwSignal<String>,
    secret_hex: RwSignal<String>,
    public_hex: RwSignal<String>,
    signature_hex: RwSignal<String>,
}

impl Fields {
    fn new() -> Self {
        let s = |v: &str| RwSignal::new(v.to_string());
        Fields {
            method: s("sha256"),
            input: s("hello, world"),
            hmac_key: s("secret key"),
            password: s("correct horse battery staple"),
            salt_hex: s(DEMO_SALT),
            m_kib: s("19456"),
            t: s("2"),
            p: s("1"),
            phc: s(""),
            key_hex: s(DEMO_KEY),
            nonce_hex: s(DEMO_NONCE),
            aad: s(""),
            ciphertext_hex: s(""),
            secret_hex: s(DEMO_SECRET),
            public_hex: s(DEMO_PUBLIC),
            signature_hex: s(""),
        }
    }

    /// The request the current form describes, or a message saying what is missing.
    fn request(&self) -> Result<LabRequest, String> {
        let g = |s: RwSignal<String>| s.get();
        let num = |s: RwSignal<String>, name: &str| g(s).trim().parse::<u32>().map_err(|_| format!("{name} must be a whole number."));
        Ok(match g(self.method).as_str() {
            "sha256" => LabRequest::Sha256 { input: g(self.input) },
            "sha512" => LabRequest::Sha512 { input: g(self.input) },
            "sha3_256" => LabRequest::Sha3_256 { input: g(self.input) },
            "hmac_sha256" => LabRequest::HmacSha256 { key: g(self.hmac_key), input: g(self.input) },
            "argon2id" => LabRequest::Argon2id {
                password: g(self.password),
                salt_hex: g(self.salt_hex),
                m_kib: num(self.m_kib, "m")?,
                t: num(self.t, "t")?,
                p: num(self.p, "p")?,
            },
            "argon2_verify" => LabRequest::Argon2Verify { phc: g(self.phc), password: g(self.password) },
            "aes256_gcm_encrypt" => {
                LabRequest::Aes256GcmEncrypt { key_hex: g(self.key_hex), nonce_hex: g(self.nonce_hex), plaintext: g(self.input), aad: g(self.aad) }
            }
            "aes256_gcm_decrypt" => LabRequest::Aes256GcmDecrypt {
                key_hex: g(self.key_hex),
                nonce_hex: g(self.nonce_hex),
                ciphertext_hex: g(self.ciphertext_hex),
                aad: g(self.aad),
            },
            "chacha20_poly1305_encrypt" => LabRequest::Chacha20Poly1305Encrypt {
                key_hex: g(self.key_hex),
                nonce_hex: g(self.nonce_hex),
                plaintext: g(self.input),
                aad: g(self.aad),
            },
            "chacha20_poly1305_decrypt" => LabRequest::Chacha20Poly1305Decrypt {
                key_hex: g(self.key_hex),
                nonce_hex: g(self.nonce_hex),
                ciphertext_hex: g(self.ciphertext_hex),
                aad: g(self.aad),
            },
            "ed25519_sign" => LabRequest::Ed25519Sign { secret_hex: g(self.secret_hex), message: g(self.input) },
            "ed25519_verify" => {
                LabRequest::Ed25519Verify { public_hex: g(self.public_hex), message: g(self.input), signature_hex: g(self.signature_hex) }
            }
            other => return Err(format!("Unknown method {other}.")),
        })
    }
}

fn is_slow(method: &str) -> bool {
    method == "argon2id" || method == "argon2_verify"
}

fn shows(method: &str, field: &str) -> bool {
    let m = method;
    match field {
        "input" => !m.starts_with("argon2") && !m.ends_with("_decrypt"),
        "hmac_key" => m == "hmac_sha256",
        "password" => m.starts_with("argon2"),
        "argon2_params" => m == "argon2id",
        "phc" => m == "argon2_verify",
        "key" => m.contains("gcm") || m.contains("chacha"),
        "ciphertext" => m.ends_with("_decrypt"),
        "secret" => m == "ed25519_sign",
        "public" | "signature" => m == "ed25519_verify",
        _ => false,
    }
}

/// `/crypto` as a lazily loaded route: with `cargo leptos build --split` its code is its own WASM chunk,
/// fetched when the page is opened, so other pages do not carry it.
pub struct CryptoRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for CryptoRoute {
    fn data() -> Self {
        CryptoRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <CryptoPage/> }.into_any()
    }
}

#[component]
pub fn CryptoPage() -> impl IntoView {
    let f = Fields::new();
    // Cheap methods recompute on every keystroke; Argon2 waits for the button and runs in a Web Worker
    // (it takes 19 MiB and a noticeable fraction of a second), so the page stays usable and it can be
    // cancelled. Both run the lab's own WASM module, loaded the first time this page needs it.
    let fast_result = RwSignal::new(None::<LabResult>);
    let slow_result = RwSignal::new(None::<LabResult>);
    let busy = RwSignal::new(false);
    let browser = Memo::new(move |_| if is_slow(&f.method.get()) { slow_result.get() } else { fast_result.get() });
    #[cfg(feature = "hydrate")]
    {
        // Answers can arrive out of order while typing: only the newest request's answer is shown.
        let generation = StoredValue::new(0u64);
        Effect::new(move |_| {
            if is_slow(&f.method.get()) {
                return;
            }
            let req = f.request();
            let current = generation.get_value() + 1;
            generation.set_value(current);
            match req {
                Err(message) => fast_result.set(Some(Err(crate::api::Problem::new(crate::api::Kind::Invalid, "invalid_input", message)))),
                Ok(req) => leptos::task::spawn_local(async move {
                    let answer = crate::crypto_wasm::lab_run(&req).await.unwrap_or_else(|e| Err(crate::crypto_wasm::as_lab_error(e)));
                    if generation.get_value() == current {
                        fast_result.set(Some(answer));
                    }
                }),
            }
        });
    }
    let server = Action::new(|req: &LabRequest| lab_on_server(req.clone()));
    // A new method or new inputs make the previous server answer stale.
    Effect::new(move |_| {
        let _ = f.request();
        server.value().set(None);
    });
    Effect::new(move |_| {
        f.method.track();
        if busy.get_untracked() {
            cancel_worker();
        }
        slow_result.set(None);
    });

    let run_slow = move |_| {
        let Ok(req) = f.request() else { return };
        busy.set(true);
        slow_result.set(None);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::crypto_wasm::{as_lab_error, lab_run_in_worker};
            let answer = lab_run_in_worker(&req).await.unwrap_or_else(|e| Err(as_lab_error(e)));
            slow_result.set(Some(answer));
            busy.set(false);
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = req;
    };
    let cancel_slow = move |_| cancel_worker();
    let verify = move |_| {
        if let Ok(req) = f.request() {
            server.dispatch(req);
        }
    };

    let info = move || {
        let m = f.method.get();
        let id = METHODS.iter().find(|(v, ..)| *v == m).map(|(.., id)| *id).unwrap_or("sha256");
        crypto::methods().iter().find(|i| i.id == id).copied()
    };

    view! {
        <Title text="Crypto lab"/>
        <h1>"Crypto lab"</h1>
        <p class="muted">"Hash, encrypt and sign in your browser with WebAssembly, then check the server computes the same."</p>

        <section class="card" aria-labelledby="method-heading">
            <h2 id="method-heading" class="visually-hidden">"Method"</h2>
            <div class="field">
                <label for="method">"Method"</label>
                <select id="method" data-testid="method" prop:value=move || f.method.get() on:change=move |ev| f.method.set(event_target_value(&ev))>
                    {["One-way", "Two-way", "Signature"].into_iter().map(|group| view! {
                        <optgroup label=group>
                            {METHODS.iter().filter(|(.., g, _)| *g == group).map(|(value, label, ..)| view! {
                                <option value=*value>{*label}</option>
                            }).collect_view()}
                        </optgroup>
                    }).collect_view()}
                </select>
            </div>
            {move || info().map(|i| view! {
                <div class="method-info" data-testid="method-info">
                    <span class="badge">{i.kind.as_str()}</span>
                    <p><strong>"What it is for: "</strong>{i.what_for}</p>
                    <p><strong>"When not to use it: "</strong>{i.not_for}</p>
                </div>
            })}
        </section>

        <section class="card stack" aria-labelledby="inputs-heading">
            <h2 id="inputs-heading">"Inputs"</h2>
            <Show when=move || shows(&f.method.get(), "input")>
                <TextArea id="lab-input" label="Message" value=f.input/>
            </Show>
            <Show when=move || shows(&f.method.get(), "hmac_key")>
                <TextField id="hmac-key" label="Key (text)" value=f.hmac_key/>
            </Show>
            <Show when=move || shows(&f.method.get(), "password")>
                <TextField id="lab-password" label="Password" value=f.password/>
            </Show>
            <Show when=move || shows(&f.method.get(), "argon2_params")>
                <HexField id="salt" label="Salt (hex, 8–48 bytes)" value=f.salt_hex generate=16/>
                <div class="row">
                    <TextField id="argon-m" label="m (KiB)" value=f.m_kib/>
                    <TextField id="argon-t" label="t (passes)" value=f.t/>
                    <TextField id="argon-p" label="p (lanes)" value=f.p/>
                </div>
            </Show>
            <Show when=move || shows(&f.method.get(), "phc")>
                <TextField id="phc" label="PHC string ($argon2id$…)" value=f.phc/>
            </Show>
            <Show when=move || shows(&f.method.get(), "key")>
                <HexField id="key" label="Key (hex, 32 bytes)" value=f.key_hex generate=32/>
                <HexField id="nonce" label="Nonce (hex, 12 bytes — never reuse one with the same key)" value=f.nonce_hex generate=12/>
                <TextField id="aad" label="Associated data (optional, authenticated but not encrypted)" value=f.aad/>
            </Show>
            <Show when=move || shows(&f.method.get(), "ciphertext")>
                <TextArea id="ciphertext" label="Ciphertext with tag (hex)" value=f.ciphertext_hex/>
            </Show>
            <Show when=move || shows(&f.method.get(), "secret")>
                <HexField id="secret" label="Secret key (hex, 32 bytes)" value=f.secret_hex generate=32/>
            </Show>
            <Show when=move || shows(&f.method.get(), "public")>
                <TextField id="public" label="Public key (hex, 32 bytes)" value=f.public_hex/>
                <TextField id="signature" label="Signature (hex, 64 bytes)" value=f.signature_hex/>
            </Show>
            <Show when=move || is_slow(&f.method.get())>
                <div class="row">
                    <button type="button" class="btn btn-primary" data-testid="run-slow" on:click=run_slow disabled=move || busy.get()>
                        {move || if busy.get() { "Working…" } else { "Run in the browser" }}
                    </button>
                    <Show when=move || busy.get()>
                        <button type="button" class="btn btn-secondary" data-testid="cancel-slow" on:click=cancel_slow>"Cancel"</button>
                    </Show>
                </div>
                <p class="muted" role="status">{move || busy.get().then_some("Argon2 is deliberately slow: it runs in a background worker, so the page stays usable.")}</p>
            </Show>
        </section>

        <section class="card" aria-labelledby="output-heading" aria-live="polite">
            <h2 id="output-heading">"Computed in your browser (WASM)"</h2>
            {move || match browser.get() {
                None => view! { <p class="empty">"Not computed yet."</p> }.into_any(),
                Some(Err(e)) => view! { <p class="alert alert-error" data-testid="browser-error">{e.detail}</p> }.into_any(),
                Some(Ok(out)) => view! { <OutputRows out=out testid="browser-output"/> }.into_any(),
            }}
            <div class="verify">
                <button type="button" class="btn btn-secondary" data-testid="verify" on:click=verify disabled=move || server.pending().get()>
                    {move || if server.pending().get() { "Checking…" } else { "Verify on the server" }}
                </button>
                {move || {
                    let answer = server.value().get()?;
                    let view = match (answer, browser.get()) {
                        (Err(e), _) => view! { <span class="badge badge-bad" data-testid="verdict">{format!("Server error: {}", e.detail)}</span> }.into_any(),
                        (Ok(server_side), Some(browser_side)) if same(&server_side, &browser_side) => {
                            view! { <span class="badge badge-good" data-testid="verdict">"Server agrees"</span> }.into_any()
                        }
                        (Ok(server_side), _) => {
                            let detail = match server_side {
                                Ok(out) => out.hex.or(out.text).unwrap_or_default(),
                                Err(e) => e.detail,
                            };
                            view! { <span class="badge badge-bad" data-testid="verdict">"Server disagrees: " {detail}</span> }.into_any()
                        }
                    };
                    Some(view)
                }}
            </div>
        </section>

        <crate::pages::crypto_bench::BenchPanel/>
    }
}

fn same(a: &LabResult, b: &LabResult) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => x.code == y.code,
        _ => false,
    }
}

#[component]
fn OutputRows(out: LabOutput, testid: &'static str) -> impl IntoView {
    let rows = [("Hex", out.hex), ("Base64", out.base64), ("Text", out.text)];
    view! {
        <dl class="facts output" data-testid=testid>
            {rows.into_iter().filter_map(|(name, v)| v.map(|v| view! {
                <dt>{name}</dt>
                <dd><code data-testid=format!("{testid}-{}", name.to_lowercase())>{v}</code></dd>
            })).collect_view()}
        </dl>
    }
}

#[component]
fn TextField(id: &'static str, label: &'static str, value: RwSignal<String>) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <input id=id type="text" spellcheck="false" autocomplete="off" prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev))/>
        </div>
    }
}

#[component]
fn TextArea(id: &'static str, label: &'static str, value: RwSignal<String>) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <textarea id=id rows="3" spellcheck="false" prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev))></textarea>
        </div>
    }
}

/// A hex input with a "Generate" button that fills it with `generate` random bytes (in the browser).
#[component]
fn HexField(id: &'static str, label: &'static str, value: RwSignal<String>, generate: usize) -> impl IntoView {
    let fill = move |_| value.set(random_hex(generate));
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <div class="with-button">
                <input id=id type="text" class="mono" spellcheck="false" autocomplete="off" prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev))/>
                <button type="button" class="btn btn-secondary" on:click=fill aria-label=format!("Generate a random value for {label}")>"Generate"</button>
            </div>
        </div>
    }
}

/// `bytes` random bytes from the browser's CSPRNG (`crypto.getRandomValues`), as hex.
fn random_hex(bytes: usize) -> String {
    #[allow(unused_mut)]
    let mut buf = vec![0u8; bytes];
    #[cfg(feature = "hydrate")]
    if let Some(c) = web_sys::window().and_then(|w| w.crypto().ok()) {
        let _ = c.get_random_values_with_u8_array(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stops a running Argon2 worker (the answer becomes "Cancelled.").
fn cancel_worker() {
    #[cfg(feature = "hydrate")]
    crate::crypto_wasm::cancel_worker();
}
