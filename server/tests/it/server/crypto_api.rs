//! `POST /api/crypto` and `GET /api/crypto/methods`: the native side of the crypto lab.

use crate::common::*;
use axum::http::{header, StatusCode};

async fn json(app: &TestApp, body: &str) -> (StatusCode, serde_json::Value) {
    let res = app.send(lab_request(body)).await;
    let status = res.status();
    let text = body_text(res).await;
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

#[test]
fn hashes_match_the_standard_answers() {
    block_on(async {
        let app = spawn().await;
        let (status, v) = json(&app, r#"{"method":"sha256","input":"abc"}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["hex"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(v["base64"], "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        let (_, v) = json(&app, r#"{"method":"sha3_256","input":""}"#).await;
        assert_eq!(v["hex"], "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    })
}

#[test]
fn tampered_ciphertext_is_a_422_with_a_stable_code() {
    block_on(async {
        let app = spawn().await;
        let key = "00".repeat(32);
        let nonce = "00".repeat(12);
        let (status, v) = json(
            &app,
            &format!(r#"{{"method":"aes256_gcm_encrypt","key_hex":"{key}","nonce_hex":"{nonce}","plaintext":"attack at dawn","aad":""}}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let mut ct = v["hex"].as_str().unwrap().to_string();
        let (_, v) =
            json(&app, &format!(r#"{{"method":"aes256_gcm_decrypt","key_hex":"{key}","nonce_hex":"{nonce}","ciphertext_hex":"{ct}","aad":""}}"#))
                .await;
        assert_eq!(v["text"], "attack at dawn");
        ct.replace_range(0..2, if &ct[0..2] == "ff" { "00" } else { "ff" });
        let (status, v) =
            json(&app, &format!(r#"{{"method":"aes256_gcm_decrypt","key_hex":"{key}","nonce_hex":"{nonce}","ciphertext_hex":"{ct}","aad":""}}"#))
                .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["code"], "decryption_failed");
    })
}

#[test]
fn expensive_argon2_is_refused_on_the_server() {
    block_on(async {
        let app = spawn().await;
        let (status, v) = json(&app, r#"{"method":"argon2id","password":"pw","salt_hex":"0011223344556677","m_kib":262144,"t":10,"p":1}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["code"], "invalid_params");
    })
}

#[test]
fn bad_requests_get_clear_4xx() {
    block_on(async {
        let app = spawn().await;
        let (status, v) = json(&app, r#"{"method":"rot13","input":"x"}"#).await;
        assert!(status.is_client_error(), "{status}");
        assert!(v["detail"].as_str().unwrap().contains("unknown variant"), "{v}");
        let (status, _) = json(&app, "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, v) = json(&app, r#"{"method":"ed25519_verify","public_hex":"zz","message":"m","signature_hex":""}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["code"], "invalid_hex");
        // Cross-site posts are refused here too.
        let mut req = lab_request(r#"{"method":"sha256","input":"abc"}"#);
        req.headers_mut().insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(app.send(req).await.status(), StatusCode::FORBIDDEN);
    })
}

#[test]
fn methods_are_described() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(get("/api/crypto/methods", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body_text(res).await).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 8);
        assert!(list.iter().any(|m| m["id"] == "sha256" && m["kind"] == "one-way" && m["not_for"].as_str().unwrap().contains("Passwords")));
    })
}

#[test]
fn the_crypto_page_is_public_and_server_rendered() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(get("/crypto", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let html = body_text(res).await;
        assert!(html.contains("Crypto lab"));
        // The form and each method's explanation are server-rendered; the "computed in your browser"
        // result waits for the browser, which loads the lab's own WASM module for it.
        assert!(html.contains("What it is for: "), "method explanation rendered");
        assert!(html.contains("Not computed yet."), "no browser result claimed on the server");
        assert!(!html.contains("09ca7e4eaa6e8ae9c7d261167129184883644d07dfba7cbfbc4c8a2e08360d5b"));
    })
}
