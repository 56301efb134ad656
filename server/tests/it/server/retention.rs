//! Retention (issue 17) through the server's pruner, on SQLite and (in the second pass) PostgreSQL:
//! every store of the app database is pruned to its age and nothing newer, in batches; one instance
//! at a time prunes the shared database; `/metrics` shows what each store holds.

use crate::common::*;
use server::retention::Pruner;

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Runs `sql` with the bound values (all integers or texts as given).
async fn exec(pool: &sqlx::AnyPool, sql: &str, args: &[Arg<'_>]) {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Arg::I(n) => q.bind(*n),
            Arg::S(s) => q.bind(*s),
        };
    }
    q.execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

enum Arg<'a> {
    I(i64),
    S(&'a str),
}
use Arg::{I, S};

async fn count(pool: &sqlx::AnyPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await.unwrap()
}

/// One row of every table retention covers, stamped `at_ms` (`tag` keeps keys unique).
async fn rows_at(app: &TestApp, tag: &str, at_ms: i64, user_id: i64) {
    let p = &app.state.pool;
    let id = |what: &str| format!("{what}_{tag}");
    exec(
        p,
        "INSERT INTO webhook_messages (id, owner, event_type, payload, created_ms) VALUES ($1, 'ann', 'test.ping', '{}', $2)",
        &[S(&id("msg")), I(at_ms)],
    )
    .await;
    exec(
        p,
        "INSERT INTO webhook_deliveries (notification_id, message_id, endpoint_id, state, created_ms) VALUES ($1, $2, 'ep_x', 'delivered', $3)",
        &[S(&id("n")), S(&id("msg")), I(at_ms)],
    )
    .await;
    exec(p, "INSERT INTO webhook_attempts (message_id, endpoint_id, notification_id, attempt, at_ms, duration_ms, outcome) VALUES ($1, 'ep_x', $2, 1, $3, 5, 'delivered')", &[S(&id("msg")), S(&id("n")), I(at_ms)]).await;
    exec(p, "INSERT INTO webhook_owner_notices (owner, kind, message, created_ms) VALUES ('ann', 'endpoint_disabled', 'x', $1)", &[I(at_ms)]).await;
    exec(
        p,
        "INSERT INTO webhook_recoveries (id, owner, endpoint_id, since_ms, until_ms, status, total, sent, cursor_seq, heartbeat_ms, created_ms) \
         VALUES ($1, 'ann', 'ep_x', $2, $2, 'completed', 0, 0, 0, $2, $2)",
        &[S(&id("rec")), I(at_ms)],
    )
    .await;
    exec(
        p,
        "INSERT INTO inbound_webhooks (source, webhook_id, webhook_timestamp, received_ms, payload) VALUES ('crm', $1, 0, $2, '{}')",
        &[S(&id("wh")), I(at_ms)],
    )
    .await;
    exec(p, "INSERT INTO workflow_inbox (source, correlation, payload, received_at_ms) VALUES ('crm', $1, '{}', $2)", &[S(&id("c")), I(at_ms)]).await;
    exec(
        p,
        "INSERT INTO workflow_runs (id, owner, workflow, definition_version, definition, input, status, current_step, attempt, state, created_at_ms, updated_at_ms, finished_at_ms) \
         VALUES ($1, 'ann', 'w', 1, '{}', '{}', 'completed', 0, 0, '{}', $2, $2, $2)",
        &[S(&id("run")), I(at_ms)],
    )
    .await;
    exec(
        p,
        "INSERT INTO workflow_step_attempts (run_id, step_index, step_name, phase, attempt, outcome, started_at_ms) VALUES ($1, 0, 'a', 'forward', 1, 'succeeded', $2)",
        &[S(&id("run")), I(at_ms)],
    )
    .await;
    exec(p, "INSERT INTO demo_customers (id, owner, email, name, created_ms) VALUES ($1, 'ann', $1, 'x', $2)", &[S(&id("cus")), I(at_ms)]).await;
    exec(
        p,
        "INSERT INTO api_idempotency (owner, idem_key, request_hash, status, created_ms) VALUES ('ann', $1, 'h', 201, $2)",
        &[S(&id("k")), I(at_ms)],
    )
    .await;
    let secs = at_ms / 1000;
    exec(
        p,
        "INSERT INTO api_tokens (user_id, name, prefix, token_hash, scopes, created_at, expires_at, revoked_at) VALUES ($1, 't', 'p', $2, '', $3, $3, NULL)",
        &[I(user_id), S(&id("hash")), I(secs)],
    )
    .await;
    exec(
        p,
        "INSERT INTO user_sessions (handle, store_id, user_id, created_at, last_seen_at, expires_at) VALUES ($1, $1, $2, $3, $3, $3)",
        &[S(&id("h")), I(user_id), I(secs)],
    )
    .await;
}

const TABLES: [&str; 14] = [
    "webhook_messages",
    "webhook_deliveries",
    "webhook_attempts",
    "webhook_owner_notices",
    "webhook_recoveries",
    "inbound_webhooks",
    "workflow_inbox",
    "workflow_runs",
    "workflow_step_attempts",
    "demo_customers",
    "api_idempotency",
    "api_tokens",
    "user_sessions",
    "prune_lease",
];

#[test]
fn every_store_of_the_app_database_is_pruned_to_its_age_and_nothing_newer() {
    block_on(async {
        // Batches of 2: every store takes several.
        let app = spawn_with(|s| s.retention.batch_rows = 2).await;
        app.create_user("ann", "correct horse battery").await;
        let user = app.state.auth.users.find_by_username("ann").await.unwrap().unwrap().id;
        let now = now_ms();
        // Per table: 5 rows past every retention (a year old), 3 inside every retention but for
        // sessions and tokens, which a year from now has not reached yet.
        for i in 0..5 {
            rows_at(&app, &format!("old{i}"), now - 365 * DAY_MS, user).await;
        }
        for i in 0..3 {
            rows_at(&app, &format!("new{i}"), now + 365 * DAY_MS, user).await;
        }
        let pool = &app.state.pool;
        let before: Vec<i64> = futures_util::future::join_all(TABLES[..13].iter().map(|t| count(pool, t))).await;
        let report = app.state.retention.pass().await;
        assert!(report.held_lease);
        for (t, n) in TABLES[..13].iter().zip(before) {
            assert_eq!(count(pool, t).await, n - 5, "{t}: the five old rows went, the rest stayed");
        }
        for store in [
            "webhook_messages",
            "inbound_webhook_ids",
            "workflow_inbox",
            "workflow_runs",
            "demo_customers",
            "idempotency_answers",
            "api_tokens",
            "sessions",
        ] {
            assert!(report.pruned[store] >= 5, "{store}: {:?}", report.pruned);
        }
        // Nothing is left to prune; the lease was given back.
        let again = app.state.retention.pass().await;
        assert!(again.pruned.values().all(|n| *n == 0), "{again:?}");
        // What each store holds, for /metrics.
        let store = |name| app.state.retention.store(name).unwrap_or_else(|| panic!("{name} measured"));
        assert_eq!(store("workflow_runs").rows, 6, "3 runs and their 3 attempts");
        assert_eq!(store("workflow_runs").keep_secs, 30 * 86_400);
        assert!(store("webhook_messages").oldest_ms.unwrap() > now, "only the new rows are left");
        // Bytes per store from the engine itself (dbstat, pg_total_relation_size): tables hold pages.
        for name in ["webhook_messages", "workflow_runs", "api_tokens", "sessions"] {
            assert!(store(name).bytes.unwrap() >= 4096, "{name}: {:?}", store(name));
        }
        let report = app.state.retention.report();
        assert_eq!(report.stores.len(), server::retention::stores(&app.state.settings.retention).len(), "every store measured");
        assert!(report.next_pass_ms > report.measured_ms && report.measured_ms.unwrap() >= now);
        let res = app.send(get("/metrics", None)).await;
        let text = body_text(res).await;
        assert!(text.contains("app_pruned_total{store=\"workflow_runs\"} 10"), "{text}");
        assert!(text.contains("app_store_rows{store=\"api_tokens\"} 3"), "{text}");
        assert!(text.contains("app_store_bytes{store=\"workflow_runs\"}"), "{text}");
    });
}

#[test]
fn while_one_instance_holds_the_lease_another_leaves_the_shared_stores_alone() {
    block_on(async {
        let app = spawn().await;
        app.create_user("ann", "correct horse battery").await;
        let user = app.state.auth.users.find_by_username("ann").await.unwrap().unwrap().id;
        rows_at(&app, "old", now_ms() - 365 * DAY_MS, user).await;
        let pool = &app.state.pool;
        // Another instance's pruner is mid-pass (its lease runs for a minute more).
        exec(pool, "INSERT INTO prune_lease (name, holder, until_ms) VALUES ('retention', 'other-instance', $1)", &[I(now_ms() + 60_000)]).await;
        let second = Pruner::new(pool.clone(), app.state.notify.clone(), &app.state.settings.retention);
        let report = second.pass().await;
        assert!(!report.held_lease);
        assert!(!report.pruned.contains_key("webhook_messages"), "{report:?}");
        assert!(report.pruned.contains_key("notifications_delivered"), "its own queue file is pruned all the same");
        assert_eq!(count(pool, "webhook_messages").await, 1);
        // The other instance died: its lease lapses and the next pass takes over.
        exec(pool, "UPDATE prune_lease SET until_ms = $1", &[I(now_ms() - 1)]).await;
        let report = second.pass().await;
        assert!(report.held_lease);
        assert_eq!(count(pool, "webhook_messages").await, 0);
        // Two pruners at once: one holds the lease for the pass, so the rows are pruned once.
        for i in 0..4 {
            rows_at(&app, &format!("again{i}"), now_ms() - 365 * DAY_MS, user).await;
        }
        let first = &app.state.retention;
        let (a, b) = tokio::join!(first.pass(), second.pass());
        let total = |r: &server::retention::PassReport| r.pruned.get("webhook_messages").copied().unwrap_or(0);
        assert!(a.held_lease || b.held_lease);
        assert_eq!(total(&a) + total(&b), 4 * 5, "each message, delivery, attempt, notice and recovery once: {a:?} {b:?}");
        assert_eq!(count(pool, "webhook_messages").await, 0);
    });
}

#[test]
fn operators_alone_read_storage_per_store_with_a_session_or_an_ops_read_token() {
    block_on(async {
        let app = spawn_with(|s| s.operators = vec!["olga".into()]).await;
        for user in ["olga", "ann"] {
            app.create_user(user, "correct horse battery").await;
        }
        let user = app.state.auth.users.find_by_username("ann").await.unwrap().unwrap().id;
        rows_at(&app, "old", now_ms() - 365 * DAY_MS, user).await;
        app.state.retention.pass().await;
        let ops = app.state.auth.users.find_by_username("olga").await.unwrap().unwrap().id;
        let (_, token) = {
            let (info, secret) = app.state.tokens.create(ops, "ops", &[auth::tokens::Scope::OpsRead], None).await.unwrap();
            (info.id, secrecy::ExposeSecret::expose_secret(&secret).to_string())
        };
        let (status, _, body) = app.call(api("GET", "/api/v1/ops/storage", Some(&token), None)).await;
        assert_eq!(status, 200, "{body}");
        let stores = body["stores"].as_array().unwrap();
        let named = |n: &str| stores.iter().find(|s| s["name"] == n).unwrap_or_else(|| panic!("{n} in {body}")).clone();
        assert_eq!(named("webhook_messages")["pruned"], 5, "the year-old message went with its delivery, attempt, notice and recovery");
        assert_eq!(named("webhook_messages")["keep_secs"], 14 * 86_400);
        assert!(named("sessions")["bytes"].as_u64().unwrap() > 0, "{body}");
        assert!(body["next_pass_ms"].as_i64().unwrap() > body["measured_ms"].as_i64().unwrap());
        assert!(body["files"].as_array().unwrap().iter().any(|f| f["name"] == "queue"), "{body}");
        // The operator's session too, and /me says what it may do.
        let olga = app.login("olga", "correct horse battery").await;
        assert_eq!(app.send(get("/api/v1/ops/storage", Some(&olga))).await.status(), 200);
        let (_, _, me) = app.call(get("/api/v1/me", Some(&olga))).await;
        assert!(me["scopes"].as_array().unwrap().iter().any(|s| s == "ops:read"), "{me}");

        // Anyone else: refused, with a session or a token of every scope they can have.
        let ann = app.login("ann", "correct horse battery").await;
        let (status, _, problem) = app.call(get("/api/v1/ops/storage", Some(&ann))).await;
        assert_eq!((status.as_u16(), problem["code"].as_str()), (403, Some("forbidden")), "{problem}");
        let (_, wide) = app.token("ann", &auth::tokens::Scope::USER).await;
        assert_eq!(app.call(api("GET", "/api/v1/ops/storage", Some(&wide), None)).await.0, 403);
        let (_, _, me) = app.call(get("/api/v1/me", Some(&ann))).await;
        assert!(!me["scopes"].as_array().unwrap().iter().any(|s| s == "ops:read"), "{me}");
        // …and cannot mint the scope.
        let err = app.state.tokens.create(user, "ops", &[auth::tokens::Scope::OpsRead], None).await.unwrap_err();
        assert!(err.to_string().contains("operators"), "{err}");
        // An operator's token without the scope is refused too.
        let (_, narrow) = app.token("olga", &[auth::tokens::Scope::NotificationsRead]).await;
        let (status, _, problem) = app.call(api("GET", "/api/v1/ops/storage", Some(&narrow), None)).await;
        assert_eq!(status, 403);
        assert!(problem["detail"].as_str().unwrap().contains("ops:read"), "{problem}");
    });
}
