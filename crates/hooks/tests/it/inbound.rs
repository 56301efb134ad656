//! Webhooks in, on every engine: the Standard Webhooks published example verifies (notify's signature
//! tests check the signing side of the same vector); tampered bodies, wrong secrets, old and future
//! timestamps, missing headers and unknown sources are refused; a replayed id is not processed twice.

use crate::common;
use contract::PublicError;

use hooks::{HooksError, Inbound, InboundConfig, InboundSource, InboundVerifier, Secret};
use http::{HeaderMap, HeaderValue, StatusCode};
use notify::signature::SigningKey;
use std::collections::HashMap;

// The published example of the Standard Webhooks spec and reference libraries.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1614265330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    h.insert("webhook-timestamp", HeaderValue::from_str(&ts.to_string()).unwrap());
    h.insert("webhook-signature", HeaderValue::from_str(sig).unwrap());
    h
}

fn config(secrets: &[&str]) -> InboundConfig {
    let source =
        InboundSource { secrets: secrets.iter().map(|s| Secret::new(*s)).collect(), workflow: Some("orders.import".into()), ..Default::default() };
    InboundConfig { sources: HashMap::from([("shop".to_string(), source)]), ..InboundConfig::default() }
}

async fn verifier(db: &db::testing::TestDb, secrets: &[&str]) -> InboundVerifier {
    InboundVerifier::new(common::pool(db).await, &config(secrets)).unwrap()
}

#[tokio::test]
async fn the_published_example_is_accepted_once_then_deduplicated() {
    for db in db::testing::engines().await {
        let v = verifier(&db, &[SECRET]).await;
        let got = v.receive("shop", &headers(ID, TS, SIG), BODY, TS).await.unwrap();
        let Inbound::Accepted(event) = got else { panic!("{}: {got:?}", db.engine.as_str()) };
        assert_eq!((event.source.as_str(), event.webhook_id.as_str(), event.timestamp), ("shop", ID, TS));
        assert_eq!(event.payload["test"], 2432232314u64);
        assert_eq!(event.workflow.as_deref(), Some("orders.import"));

        // The same request again (a replay, or the sender retrying): verified but not processed again.
        let again = v.receive("shop", &headers(ID, TS, SIG), BODY, TS + 10).await.unwrap();
        assert_eq!(again, Inbound::Duplicate { source: "shop".into(), webhook_id: ID.into() }, "{}", db.engine.as_str());
    }
}

#[tokio::test]
async fn forged_stale_and_malformed_requests_are_refused() {
    for db in db::testing::engines().await {
        let v = verifier(&db, &[SECRET]).await;
        let engine = db.engine.as_str();
        let check = |r: Result<Inbound, HooksError>, status: StatusCode, code: &str| {
            let e = r.expect_err(code);
            assert_eq!((e.status(), e.code()), (status.as_u16(), code), "{engine}: {e}");
        };
        // Tampered body, another id under the same signature, a signature made with the wrong secret.
        check(v.receive("shop", &headers(ID, TS, SIG), br#"{"test": 2432232315}"#, TS).await, StatusCode::UNAUTHORIZED, "invalid_signature");
        check(v.receive("shop", &headers("msg_other", TS, SIG), BODY, TS).await, StatusCode::UNAUTHORIZED, "invalid_signature");
        let wrong = SigningKey::from_secret(&SigningKey::generate_secret()).unwrap().sign(ID, TS, BODY);
        check(v.receive("shop", &headers(ID, TS, &wrong), BODY, TS).await, StatusCode::UNAUTHORIZED, "invalid_signature");
        // Validly signed, but older or newer than five minutes.
        check(v.receive("shop", &headers(ID, TS, SIG), BODY, TS + 301).await, StatusCode::UNAUTHORIZED, "stale_timestamp");
        check(v.receive("shop", &headers(ID, TS, SIG), BODY, TS - 301).await, StatusCode::UNAUTHORIZED, "stale_timestamp");
        // Unknown source, missing and ill-formed headers, a body that is not JSON.
        check(v.receive("other", &headers(ID, TS, SIG), BODY, TS).await, StatusCode::NOT_FOUND, "unknown_source");
        let mut h = headers(ID, TS, SIG);
        h.remove("webhook-signature");
        check(v.receive("shop", &h, BODY, TS).await, StatusCode::BAD_REQUEST, "bad_request");
        let mut h = headers(ID, TS, SIG);
        h.insert("webhook-timestamp", HeaderValue::from_static("yesterday"));
        check(v.receive("shop", &h, BODY, TS).await, StatusCode::BAD_REQUEST, "bad_request");
        check(v.receive("shop", &headers("has space", TS, SIG), BODY, TS).await, StatusCode::BAD_REQUEST, "bad_request");
        let key = SigningKey::from_secret(SECRET).unwrap();
        let not_json = key.sign("msg_2", TS, b"hello");
        check(v.receive("shop", &headers("msg_2", TS, &not_json), b"hello", TS).await, StatusCode::BAD_REQUEST, "bad_request");
        let big = vec![b' '; 256 * 1024 + 1];
        check(v.receive("shop", &headers(ID, TS, SIG), &big, TS).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

        // None of that was recorded: the genuine message is still accepted the first time.
        assert!(matches!(v.receive("shop", &headers(ID, TS, SIG), BODY, TS + 300).await.unwrap(), Inbound::Accepted(_)), "{engine}");
    }
}

#[tokio::test]
async fn a_source_rotating_its_secret_is_accepted_with_either_and_pruning_forgets_ids() {
    for db in db::testing::engines().await {
        let new_secret = SigningKey::generate_secret();
        let v = verifier(&db, &[&new_secret, SECRET]).await;
        let now = common::now_secs();
        let new_key = SigningKey::from_secret(&new_secret).unwrap();
        let by_new = new_key.sign("msg_a", now, BODY);
        assert!(matches!(v.receive("shop", &headers("msg_a", now, &by_new), BODY, now).await.unwrap(), Inbound::Accepted(_)));
        let by_old = SigningKey::from_secret(SECRET).unwrap().sign("msg_b", now, BODY);
        assert!(matches!(v.receive("shop", &headers("msg_b", now, &by_old), BODY, now).await.unwrap(), Inbound::Accepted(_)));
        // Retention's batches: at most one row each, nothing received after the cut-off.
        let (ids, pool) = (hooks::RETAINED_INBOUND_IDS[0], db.connect().await);
        assert_eq!(ids.prune(&pool, 0, 5_000).await.unwrap(), 0, "{}", db.engine.as_str());
        assert_eq!(ids.prune(&pool, i64::MAX, 1).await.unwrap(), 1, "{}", db.engine.as_str());
        assert_eq!(ids.prune(&pool, i64::MAX, 5_000).await.unwrap(), 1, "{}", db.engine.as_str());
        assert!(matches!(v.receive("shop", &headers("msg_a", now, &by_new), BODY, now).await.unwrap(), Inbound::Accepted(_)));
    }
}

#[tokio::test]
async fn misconfigured_sources_are_refused_at_start() {
    let db = db::testing::sqlite().await;
    let pool = common::pool(&db).await;
    let e = InboundVerifier::new(pool.clone(), &config(&[])).unwrap_err();
    assert_eq!(e.field_errors()[0].field, "hooks.inbound.sources.shop.secrets");
    assert!(InboundVerifier::new(pool, &config(&["whsec_***"])).is_err());
}
