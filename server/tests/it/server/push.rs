//! Web Push through the real router (issue 20): a user registers a browser's subscription (checked:
//! address guard, P-256 key, 16-byte secret), sends a push notification naming it through the API, and
//! the local push service (`scripts/push_service.py`, an independent RFC 8291 decryption) receives it;
//! someone else's subscription is neither listed, deleted nor pushed to; a 410 deletes it.

use crate::common::*;
use auth::tokens::Scope;
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use testkit::wait_for;

/// The tests' own VAPID key (32 bytes, base64url).
const VAPID_KEY: &str = "DD1IgsmNyji3OI6Awduh6Ybl3kw9e0IhI-EDF_UqPjI";

#[test]
fn a_registered_subscription_receives_pushes_its_owner_sends_and_no_one_elses() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let push = testkit::PushService::start(dir.path());
        let app = spawn_with(|s| {
            s.hooks.allow_networks = vec!["127.0.0.1/32".into()];
            s.notify.push.vapid_private_key = VAPID_KEY.into();
            s.notify.webhook.retry = notify::WebhookRetry::every(20, 2);
        })
        .await;
        app.state.notify.start().await.unwrap();
        app.create_user("yan", "yan-password-1").await;
        app.create_user("zed", "zed-password-1").await;
        let (yan, zed) = (app.token("yan", &Scope::USER).await.1, app.token("zed", &Scope::USER).await.1);

        let (s, _, key) = app.call(api("GET", "/api/v1/push/vapid-public-key", Some(&yan), None)).await;
        assert_eq!(s, StatusCode::OK, "{key}");
        assert_eq!(key["public_key"].as_str().unwrap().len(), 87, "65 bytes, base64url: {key}");

        // Bad parts are named; a private address is refused by the same guard as webhook URLs.
        let bad = json!({"endpoint": "http://10.0.0.1/push/x", "keys": {"p256dh": "AAAA", "auth": "short"}});
        let (s, _, body) = app.call(api("POST", "/api/v1/push/subscriptions", Some(&yan), Some(bad))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["endpoint", "keys.p256dh", "keys.auth"], "{body}");

        let browser = push.subscribe(json!({})).await;
        // Exactly what a browser's PushSubscription.toJSON() gives.
        let to_json = json!({"endpoint": browser["endpoint"], "expirationTime": null, "keys": browser["keys"]});
        let (s, _, sub) = app.call(api("POST", "/api/v1/push/subscriptions", Some(&yan), Some(to_json.clone()))).await;
        assert_eq!(s, StatusCode::CREATED, "{sub}");
        let id = sub["id"].as_str().unwrap().to_string();
        let (_, _, again) = app.call(api("POST", "/api/v1/push/subscriptions", Some(&yan), Some(to_json))).await;
        assert_eq!(again["id"], id.as_str(), "the same endpoint again keeps its id");
        let (_, _, listed) = app.call(api("GET", "/api/v1/push/subscriptions", Some(&yan), None)).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
        let (_, _, theirs) = app.call(api("GET", "/api/v1/push/subscriptions", Some(&zed), None)).await;
        assert_eq!(theirs["items"], json!([]), "zed sees none of yan's");

        // Zed cannot push to yan's subscription, nor delete it.
        let to = |who: &str| json!({"channel": "push", "recipient": who, "payload": {"title": "Hello"}});
        let (s, _, body) = app.call(api("POST", "/api/v1/notifications", Some(&zed), Some(to(&id)))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "notifications[0].recipient", "{body}");
        let (s, _, _) = app.call(api("DELETE", &format!("/api/v1/push/subscriptions/{id}"), Some(&zed), None)).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Yan's push arrives, decrypted by the push service's own implementation.
        let (s, _, body) = app.call(api("POST", "/api/v1/notifications", Some(&yan), Some(to(&id)))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        let browser_id = browser["id"].as_str().unwrap().to_string();
        wait_for("the push at the push service", Duration::from_secs(15), || async {
            push.received(&browser_id).await["messages"].as_array().is_some_and(|m| m.len() == 1)
        })
        .await;
        let got = push.received(&browser_id).await;
        assert_eq!(got["failures"], json!([]), "{got}");
        assert_eq!(serde_json::from_str::<Value>(got["messages"][0]["payload"].as_str().unwrap()).unwrap(), json!({"title": "Hello"}));
        assert_eq!(got["messages"][0]["vapid"]["k"], key["public_key"]);

        // The browser unsubscribes: its push service answers 410 and the subscription is deleted.
        push.unsubscribe(&browser_id).await;
        let (s, _, _) = app.call(api("POST", "/api/v1/notifications", Some(&yan), Some(to(&id)))).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        wait_for("the gone subscription to be deleted", Duration::from_secs(15), || async {
            let (_, _, listed) = app.call(api("GET", "/api/v1/push/subscriptions", Some(&yan), None)).await;
            listed["items"] == json!([])
        })
        .await;
        let (s, _, _) = app.call(api("DELETE", &format!("/api/v1/push/subscriptions/{id}"), Some(&yan), None)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "already gone");
    })
}
