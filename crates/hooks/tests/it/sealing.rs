//! Endpoint secrets at rest, on every engine: never stored in the clear once a key is configured;
//! rows from before sealing and rows under an older key are resealed under the first key; a rotated
//! secret's predecessor is sealed too; and after plaintext → key 1 → key 2 the endpoint still gets
//! deliveries signed with the secret it was given.

use crate::common;
use contract::Owner;

use hooks::{EndpointUpdate, Hooks, HooksConfig, NewEndpoint};
use notify::sink::{Sink, SinkConfig};
use sqlx::Row;
use std::time::Duration;

const USER_7: Owner = Owner::from_static("7");

async fn raw(pool: &sqlx::AnyPool, id: &str) -> (String, Option<String>) {
    let row = sqlx::query("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = $1").bind(id).fetch_one(pool).await.unwrap();
    (row.try_get("secret").unwrap(), row.try_get("previous_secret").unwrap())
}

fn keys(k: &[u8]) -> HooksConfig {
    HooksConfig { secret_keys: k.iter().map(|n| common::key(*n)).collect(), ..common::config() }
}

#[tokio::test]
async fn secrets_are_sealed_resealed_under_a_new_key_and_still_sign() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let pool = common::pool(&db).await;
        let new = NewEndpoint { url: "http://127.0.0.1:9/".into(), description: String::new(), event_types: vec![], rate_limit_per_sec: None };

        // Sealed from the start when a key is configured.
        let sealed = Hooks::new(pool.clone(), keys(&[1]), None).unwrap();
        let a = sealed.create_endpoint(&USER_7, new.clone()).await.unwrap();
        let (stored, _) = raw(&pool, &a.endpoint.id).await;
        assert!(stored.starts_with("sealed:v1:") && !stored.contains(&a.secret[6..]), "{engine}: {stored}");

        // A row from before sealing (no key then) is resealed at start-up; a second pass has nothing to do.
        let before = Hooks::new(pool.clone(), keys(&[]), None).unwrap();
        let b = before.create_endpoint(&USER_7, new.clone()).await.unwrap();
        assert_eq!(raw(&pool, &b.endpoint.id).await.0, b.secret, "{engine}: no key, stored as it is");
        assert_eq!(sealed.reseal_secrets().await.unwrap(), 1, "{engine}");
        assert!(raw(&pool, &b.endpoint.id).await.0.starts_with("sealed:v1:"));
        assert_eq!(sealed.reseal_secrets().await.unwrap(), 0);

        // Rotation keeps the predecessor sealed.
        let rotated = sealed.rotate_secret(&USER_7, &b.endpoint.id).await.unwrap();
        let (now, previous) = raw(&pool, &b.endpoint.id).await;
        assert!(now.starts_with("sealed:v1:") && previous.as_deref().is_some_and(|p| p.starts_with("sealed:v1:")), "{engine}");

        // A new key first, the old one still listed: both rows move to the new key, both columns.
        let both = Hooks::new(pool.clone(), keys(&[2, 1]), None).unwrap();
        assert_eq!(both.reseal_secrets().await.unwrap(), 2, "{engine}");
        let (now2, previous2) = raw(&pool, &b.endpoint.id).await;
        assert!(now2 != now && previous2 != previous, "{engine}: rewritten under key 2");

        // Only key 2 left: deliveries are signed with the secret the owner was shown at rotation.
        let p = common::pipeline(&db, keys(&[2]), 3).await;
        let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { secret: rotated.secret.clone(), ..SinkConfig::default() }).await.unwrap();
        p.hooks.update_endpoint(&USER_7, &b.endpoint.id, EndpointUpdate { url: Some(sink.url()), ..Default::default() }).await.unwrap();
        p.hooks.send_test(&USER_7, &b.endpoint.id).await.unwrap();
        common::wait_for("a signed delivery", Duration::from_secs(20), || async { sink.stats().accepted == 1 }).await;
        assert_eq!(sink.stats().bad_signature, 0, "{engine}");
    }
}
