//! The endpoint registry on every engine: create (secret once), list with pages, get, update, delete,
//! rotation, enable/disable, validation and owner isolation.

use crate::common;
use contract::Owner;
use contract::PublicError;

use hooks::{EndpointUpdate, HooksError, NewEndpoint, PageRequest};
use http::StatusCode;

const USER_7: Owner = Owner::from_static("7");
const USER_8: Owner = Owner::from_static("8");

fn new(url: &str) -> NewEndpoint {
    NewEndpoint { url: url.into(), description: "orders".into(), event_types: vec!["workflow.completed".into()], rate_limit_per_sec: None }
}

#[tokio::test]
async fn endpoints_are_created_listed_updated_and_deleted_per_owner() {
    for db in db::testing::engines().await {
        let hooks = common::store(&db).await;
        let engine = db.engine.as_str();
        let created = hooks.create_endpoint(&USER_7, new("https://93.184.216.34/hook")).await.unwrap();
        assert!(created.secret.starts_with("whsec_"), "{engine}");
        notify::signature::SigningKey::from_secret(&created.secret).unwrap();
        assert!(!format!("{created:?}").contains(&created.secret[6..]), "the secret never prints");
        let ep = &created.endpoint;
        assert!(ep.id.starts_with("ep_") && ep.enabled && ep.consecutive_failures == 0);
        assert_eq!(ep.event_types, ["workflow.completed"]);
        assert_eq!(hooks.get_endpoint(&USER_7, &ep.id).await.unwrap(), *ep, "{engine}");

        // Someone else's endpoint does not exist for you.
        for e in [
            hooks.get_endpoint(&USER_8, &ep.id).await.unwrap_err(),
            hooks.delete_endpoint(&USER_8, &ep.id).await.unwrap_err(),
            hooks.rotate_secret(&USER_8, &ep.id).await.unwrap_err(),
            hooks.set_enabled(&USER_8, &ep.id, false).await.unwrap_err(),
            hooks.update_endpoint(&USER_8, &ep.id, EndpointUpdate::default()).await.unwrap_err(),
        ] {
            assert!(matches!(e, HooksError::NotFound), "{engine}: {e:?}");
        }

        let update = EndpointUpdate { description: Some("  billing ".into()), event_types: Some(vec![]), ..Default::default() };
        let ep2 = hooks.update_endpoint(&USER_7, &ep.id, update).await.unwrap();
        assert_eq!((ep2.description.as_str(), ep2.event_types.len(), ep2.url.as_str()), ("billing", 0, ep.url.as_str()));
        assert!(ep2.subscribes_to("test.ping"), "an empty list means every type");

        // Pages, newest first.
        for i in 0..4 {
            hooks.create_endpoint(&USER_7, new(&format!("https://93.184.216.{i}/h"))).await.unwrap();
        }
        let p1 = hooks.list_endpoints(&USER_7, PageRequest::first(3)).await.unwrap();
        assert_eq!(p1.items.len(), 3, "{engine}");
        assert_eq!(p1.items[0].url, "https://93.184.216.3/h");
        let p2 = hooks.list_endpoints(&USER_7, PageRequest { limit: Some(3), cursor: p1.next_cursor.clone() }).await.unwrap();
        assert_eq!(p2.items.len(), 2);
        assert_eq!(p2.items[1].id, ep.id);
        assert_eq!(p2.next_cursor, None);
        assert!(hooks.list_endpoints(&USER_8, PageRequest::default()).await.unwrap().items.is_empty());

        hooks.delete_endpoint(&USER_7, &ep.id).await.unwrap();
        assert!(matches!(hooks.get_endpoint(&USER_7, &ep.id).await, Err(HooksError::NotFound)));
    }
}

#[tokio::test]
async fn bad_input_is_refused_field_by_field() {
    for db in db::testing::engines().await {
        let hooks = common::store(&db).await;
        let bad = NewEndpoint {
            url: "http://169.254.169.254/latest/meta-data".into(),
            description: "x".repeat(501),
            event_types: vec!["user.deleted".into()],
            rate_limit_per_sec: Some(0),
        };
        let e = hooks.create_endpoint(&USER_7, bad).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY.as_u16());
        let fields: Vec<&str> = e.field_errors().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["url", "description", "event_types[0]", "rate_limit_per_sec"], "{}", db.engine.as_str());
        assert!(e.field_errors()[0].message.contains("link-local"), "{e}");
        for url in ["http://10.0.0.1/", "http://localhost:3000/", "http://2130706434/", "http://0x7f.2/", "ftp://93.184.216.34/", ""] {
            let e = hooks.create_endpoint(&USER_7, new(url)).await.unwrap_err();
            assert_eq!(e.field_errors()[0].field, "url", "{url}");
        }
        let long = format!("https://93.184.216.34/{}", "a".repeat(2048));
        assert!(hooks.create_endpoint(&USER_7, new(&long)).await.unwrap_err().field_errors()[0].message.contains("2048"));
        // The allowlist (loopback for tests) lets its own network in.
        hooks.create_endpoint(&USER_7, new("http://127.0.0.1:9/")).await.unwrap();
        let numeric = hooks.create_endpoint(&USER_7, new("http://2130706433:9/x")).await.unwrap().endpoint;
        assert_eq!(numeric.url, "http://127.0.0.1:9/x", "stored as it will be connected to");
        let ep = hooks.create_endpoint(&USER_7, new("https://93.184.216.34/")).await.unwrap().endpoint;
        let e = hooks.update_endpoint(&USER_7, &ep.id, EndpointUpdate { url: Some("http://192.168.0.1/".into()), ..Default::default() }).await;
        assert_eq!(e.unwrap_err().field_errors()[0].field, "url");
        // A rate limit is set, changed, refused out of range and removed with 0.
        let limited = |r| EndpointUpdate { rate_limit_per_sec: Some(r), ..Default::default() };
        assert_eq!(hooks.update_endpoint(&USER_7, &ep.id, limited(5)).await.unwrap().rate_limit_per_sec, Some(5));
        let e = hooks.update_endpoint(&USER_7, &ep.id, limited(10_001)).await.unwrap_err();
        assert_eq!(e.field_errors()[0].field, "rate_limit_per_sec");
        assert_eq!(hooks.get_endpoint(&USER_7, &ep.id).await.unwrap().rate_limit_per_sec, Some(5), "a refusal changes nothing");
        assert_eq!(hooks.update_endpoint(&USER_7, &ep.id, limited(0)).await.unwrap().rate_limit_per_sec, None);
        assert_eq!(hooks.get_endpoint(&USER_7, &ep.id).await.unwrap().url, "https://93.184.216.34/");
    }
}

#[tokio::test]
async fn rotation_returns_a_new_secret_and_keeps_the_old_one_for_the_overlap() {
    for db in db::testing::engines().await {
        let hooks = common::store(&db).await;
        let created = hooks.create_endpoint(&USER_7, new("https://93.184.216.34/")).await.unwrap();
        assert_eq!(created.endpoint.previous_secret_until_ms, None);
        let rotated = hooks.rotate_secret(&USER_7, &created.endpoint.id).await.unwrap();
        assert_ne!(rotated.secret, created.secret);
        let day = 24 * 3600 * 1000;
        let until = rotated.previous_secret_until_ms - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        assert!((day - 5_000..=day).contains(&until), "{until}");
        let ep = hooks.get_endpoint(&USER_7, &created.endpoint.id).await.unwrap();
        assert_eq!(ep.previous_secret_until_ms, Some(rotated.previous_secret_until_ms), "{}", db.engine.as_str());
    }
}

#[tokio::test]
async fn disabling_and_enabling_and_the_per_owner_limit() {
    for db in db::testing::engines().await {
        let pool = common::pool(&db).await;
        let cfg = hooks::HooksConfig { max_endpoints_per_owner: 2, ..common::config() };
        let hooks = hooks::Hooks::new(pool, cfg, None).unwrap();
        let a = hooks.create_endpoint(&USER_7, new("https://93.184.216.34/a")).await.unwrap().endpoint;
        hooks.create_endpoint(&USER_7, new("https://93.184.216.34/b")).await.unwrap();
        let e = hooks.create_endpoint(&USER_7, new("https://93.184.216.34/c")).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::CONFLICT.as_u16());
        hooks.create_endpoint(&USER_8, new("https://93.184.216.34/c")).await.unwrap();

        let off = hooks.set_enabled(&USER_7, &a.id, false).await.unwrap();
        assert!(!off.enabled);
        assert_eq!(off.disabled_reason.as_deref(), Some("Disabled by its owner."));
        let on = hooks.set_enabled(&USER_7, &a.id, true).await.unwrap();
        assert!(on.enabled && on.disabled_reason.is_none());
        // Emitting needs the pipeline, which this store does not have.
        let e = hooks.emit(&USER_7, "test.ping", serde_json::json!({})).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE.as_u16(), "{}", db.engine.as_str());
    }
}
