//! The store's API operations on every database engine: definitions, runs, pagination, owner
//! isolation, idempotent starts, state conflicts and the inbound inbox.

use crate::common;
use contract::Owner;
use contract::PublicError;

use ::http::StatusCode;
use common::*;
use flows::*;
use serde_json::json;

const ALICE: Owner = Owner::from_static("alice");
const BOB: Owner = Owner::from_static("bob");

const TOML_A: &str = r#"
name = "alpha"
[[steps]]
name = "one"
action = { type = "call", name = "one" }
"#;

#[tokio::test]
async fn definitions_are_created_read_updated_listed_and_deleted_per_owner() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        store.migrate().await.expect("migrating twice is a no-op");
        let a = store.create_definition(&ALICE, TOML_A, Format::Toml).await.unwrap();
        assert_eq!((a.name.as_str(), a.version, a.format, a.definition.steps.len()), ("alpha", 1, Format::Toml, 1));
        let dup = store.create_definition(&ALICE, TOML_A, Format::Toml).await.unwrap_err();
        assert_eq!(dup.status(), StatusCode::CONFLICT.as_u16());
        assert_eq!(dup.to_string(), "a workflow named \"alpha\" already exists");
        store.create_definition(&BOB, TOML_A, Format::Toml).await.expect("names are per owner");

        assert_eq!(store.get_definition(&ALICE, a.id).await.unwrap(), a);
        assert_eq!(store.find_definition(&ALICE, "alpha").await.unwrap().id, a.id);
        assert_eq!(store.get_definition(&BOB, a.id).await.unwrap_err().status(), StatusCode::NOT_FOUND.as_u16(), "not bob's");

        let json_src = json!({"name": "alpha", "description": "v2", "steps": [{"name": "one", "action": {"type": "delay", "ms": 5}}]}).to_string();
        let u = store.update_definition(&ALICE, a.id, &json_src, Format::Json).await.unwrap();
        assert_eq!((u.version, u.format, u.definition.description.as_str()), (2, Format::Json, "v2"));
        assert!(u.updated_at_ms >= a.updated_at_ms);
        assert_eq!(store.update_definition(&BOB, a.id, &json_src, Format::Json).await.unwrap_err().status(), StatusCode::NOT_FOUND.as_u16());

        let bad = store.create_definition(&ALICE, "name = \"x\"\nsteps = []\n", Format::Toml).await.unwrap_err();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY.as_u16());
        assert_eq!(bad.field_errors()[0].field, "steps");
        let unparsable = store.create_definition(&ALICE, "{", Format::Json).await.unwrap_err();
        assert_eq!(unparsable.field_errors()[0].field, "source");

        for n in 0..4 {
            store.create_definition(&ALICE, &TOML_A.replace("alpha", &format!("w{n}")), Format::Toml).await.unwrap();
        }
        let p1 = store.list_definitions(&ALICE, Page::first(2)).await.unwrap();
        assert_eq!(p1.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["w3", "w2"], "newest first");
        let p2 = store.list_definitions(&ALICE, Page::after(2, p1.next_cursor.unwrap())).await.unwrap();
        assert_eq!(p2.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["w1", "w0"]);
        let p3 = store.list_definitions(&ALICE, Page::after(2, p2.next_cursor.unwrap())).await.unwrap();
        assert_eq!((p3.items.len(), p3.next_cursor), (1, None));
        let bad_cursor = store.list_definitions(&ALICE, Page::after(2, "x")).await.unwrap_err();
        assert_eq!(bad_cursor.status(), StatusCode::BAD_REQUEST.as_u16());

        store.delete_definition(&ALICE, a.id).await.unwrap();
        assert_eq!(store.delete_definition(&ALICE, a.id).await.unwrap_err().status(), StatusCode::NOT_FOUND.as_u16());

        let installed = store.install_builtins(&ALICE).await.unwrap();
        assert_eq!(installed[0].name, "customer_onboarding");
        assert_eq!(store.install_builtins(&ALICE).await.unwrap()[0].id, installed[0].id, "installing again keeps the one there");
    }
}

#[tokio::test]
async fn runs_start_from_a_stored_definition_keep_their_snapshot_and_are_listed_per_owner() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let d = store.create_definition(&ALICE, TOML_A, Format::Toml).await.unwrap();
        let new = |def: DefinitionRef, key: Option<&str>| NewRun {
            definition: def,
            input: json!({"k": 1}),
            idempotency_key: key.map(String::from),
            started_by: StartedBy::session(),
        };
        let r1 = store.start_run(&ALICE, new(DefinitionRef::Id(d.id), None)).await.unwrap();
        let run = store.get_run(&ALICE, &r1).await.unwrap();
        assert_eq!((run.status, run.current_step, run.definition_id, run.definition_version), (RunStatus::Running, 0, Some(d.id), 1));
        assert_eq!(run.input, json!({"k": 1}));
        assert_eq!(store.get_run(&BOB, &r1).await.unwrap_err().status(), StatusCode::NOT_FOUND.as_u16());
        assert_eq!(store.start_run(&BOB, new(DefinitionRef::Id(d.id), None)).await.unwrap_err().status(), StatusCode::NOT_FOUND.as_u16());

        // Editing or deleting the definition does not touch the runs started from it.
        let v2 = TOML_A.replace("name = \"one\"", "name = \"uno\"");
        store.update_definition(&ALICE, d.id, &v2, Format::Toml).await.unwrap();
        let r2 = store.start_run(&ALICE, new(DefinitionRef::Name("alpha".into()), Some("order-7"))).await.unwrap();
        assert_eq!(store.get_run(&ALICE, &r2).await.unwrap().definition_version, 2);
        store.delete_definition(&ALICE, d.id).await.unwrap();
        let t = store.timeline(&ALICE, &r1).await.unwrap();
        assert_eq!((t.run.definition_version, t.entries.len()), (1, 0));

        let again = store
            .start_run(&ALICE, new(DefinitionRef::Inline(def(json!({"name": "other", "steps": [call_step("x", false)]}))), Some("order-7")))
            .await
            .unwrap();
        assert_eq!(again, r2, "same idempotency key, same run");
        let bob_same_key = store
            .start_run(&BOB, new(DefinitionRef::Inline(def(json!({"name": "b", "steps": [call_step("x", false)]}))), Some("order-7")))
            .await
            .unwrap();
        assert_ne!(bob_same_key, r2, "keys are per owner");

        let needs = def(json!({"name": "needs", "input": ["email", "name"], "steps": [call_step("x", false)]}));
        let e = store
            .start_run(
                &ALICE,
                NewRun {
                    definition: DefinitionRef::Inline(needs),
                    input: json!({"name": "n"}),
                    idempotency_key: None,
                    started_by: StartedBy::session(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.to_string()), (StatusCode::UNPROCESSABLE_ENTITY.as_u16(), "input.email: is required".to_string()));

        let inline_def = def(json!({"name": "many", "steps": [call_step("x", false)]}));
        let mut ids = vec![r2.clone(), r1.clone()];
        for _ in 0..3 {
            ids.insert(0, store.start_run(&ALICE, inline(inline_def.clone(), json!({}))).await.unwrap());
        }
        let all: Vec<String> =
            store.list_runs(&ALICE, &RunFilter::default(), Page::first(50)).await.unwrap().items.into_iter().map(|r| r.id).collect();
        assert_eq!(all, ids, "newest first, only alice's");
        let p1 = store.list_runs(&ALICE, &RunFilter::default(), Page::first(2)).await.unwrap();
        let p2 = store.list_runs(&ALICE, &RunFilter::default(), Page::after(2, p1.next_cursor.clone().unwrap())).await.unwrap();
        let p3 = store.list_runs(&ALICE, &RunFilter::default(), Page::after(2, p2.next_cursor.clone().unwrap())).await.unwrap();
        let paged: Vec<String> = [p1.items, p2.items, p3.items.clone()].concat().into_iter().map(|r| r.id).collect();
        assert_eq!((paged, p3.next_cursor), (ids.clone(), None));
        let many = RunFilter { workflow: Some("many".into()), status: Some(RunStatus::Running) };
        assert_eq!(store.list_runs(&ALICE, &many, Page::first(50)).await.unwrap().items.len(), 3);
        let done = RunFilter { status: Some(RunStatus::Completed), ..RunFilter::default() };
        assert!(store.list_runs(&ALICE, &done, Page::first(50)).await.unwrap().items.is_empty());
    }
}

#[tokio::test]
async fn retry_and_cancel_answer_conflict_in_the_wrong_state() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let id = store.start_run(&ALICE, inline(def(json!({"name": "x", "steps": [call_step("x", false)]})), json!({}))).await.unwrap();
        let e = store.retry_run(&ALICE, &id, &StartedBy::session()).await.unwrap_err();
        assert_eq!((e.status(), e.to_string()), (StatusCode::CONFLICT.as_u16(), "a running run cannot be retried".to_string()));
        assert_eq!(store.cancel_run(&BOB, &id).await.unwrap_err().status(), StatusCode::NOT_FOUND.as_u16());
        let r = store.cancel_run(&ALICE, &id).await.unwrap();
        assert!(r.cancel_requested && r.status == RunStatus::Running, "the engine carries the cancel out");
    }
}

#[tokio::test]
async fn inbound_messages_wait_in_the_inbox_until_taken_or_purged() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        assert_eq!(store.deliver_inbound("crm", "c-1", &json!({"a": 1})).await.unwrap(), None, "nobody waits: kept");
        let big = json!({"x": "y".repeat(70 * 1024)});
        assert_eq!(store.deliver_inbound("crm", "c-1", &big).await.unwrap_err().field_errors()[0].field, "payload");
        let inbox = flows::RETAINED_INBOX[0];
        assert_eq!(inbox.prune(store.pool(), 0, 5_000).await.unwrap(), 0, "only older messages go");
        assert_eq!(inbox.prune(store.pool(), i64::MAX, 5_000).await.unwrap(), 1);
    }
}
