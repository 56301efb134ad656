//! Web Push subscriptions in the store (issue 20), on each engine: the checks on what a browser gives,
//! the per-user cap (a known endpoint may still be re-registered at the cap), one row per browser, and
//! owners kept apart.

use crate::common::*;
use contract::Owner;
use hooks::push::{NewSubscription, SubscriptionKeys, MAX_SUBSCRIPTIONS_PER_OWNER};
use hooks::HooksError;

const ADA: Owner = Owner::from_static("ada");
const BOB: Owner = Owner::from_static("bob");

/// A browser's subscription: a fresh P-256 public key and a 16-byte secret, at a loopback endpoint.
fn browser(n: usize) -> NewSubscription {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    NewSubscription {
        endpoint: format!("http://127.0.0.1:9/push/{n}"),
        keys: SubscriptionKeys { p256dh: notify::webpush::Vapid::generate("mailto:t@example.org").public_key(), auth: b64.encode([n as u8; 16]) },
        expiration_time: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_checked_capped_per_owner_and_one_row_per_browser() {
    for db in db::testing::engines().await {
        let hooks = store(&db).await;
        let bad = NewSubscription {
            endpoint: "http://10.0.0.1/push".into(),
            keys: SubscriptionKeys { p256dh: "AAAA".into(), auth: "short".into() },
            expiration_time: None,
        };
        let fields: Vec<String> = match hooks.create_subscription(&ADA, bad).await {
            Err(e) => e.field_errors().iter().map(|f| f.field.clone()).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields, ["endpoint", "keys.p256dh", "keys.auth"]);

        let first = hooks.create_subscription(&ADA, browser(0)).await.unwrap();
        for n in 1..MAX_SUBSCRIPTIONS_PER_OWNER as usize {
            hooks.create_subscription(&ADA, browser(n)).await.unwrap();
        }
        match hooks.create_subscription(&ADA, browser(1_000)).await {
            Err(HooksError::Conflict(m)) => assert!(m.contains("the most one user may have"), "{m}"),
            other => panic!("one over the cap: {other:?}"),
        }
        // The same browser again (new keys) keeps its id and row, even at the cap.
        let again = hooks.create_subscription(&ADA, browser(0)).await.unwrap();
        assert_eq!((again.id.as_str(), again.created_ms), (first.id.as_str(), first.created_ms));
        assert_eq!(hooks.list_subscriptions(&ADA).await.unwrap().len(), MAX_SUBSCRIPTIONS_PER_OWNER as usize);

        // Bob has a cap of his own, sees none of Ada's and cannot delete them.
        assert!(hooks.list_subscriptions(&BOB).await.unwrap().is_empty());
        hooks.create_subscription(&BOB, browser(0)).await.unwrap();
        assert!(matches!(hooks.delete_subscription(&BOB, &first.id).await, Err(HooksError::NotFound)));
        hooks.delete_subscription(&ADA, &first.id).await.unwrap();
        assert!(matches!(hooks.delete_subscription(&ADA, &first.id).await, Err(HooksError::NotFound)));
    }
}
