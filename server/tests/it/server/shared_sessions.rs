//! Two app instances over one database and one Redis session store, as behind nginx's upstream: a
//! session made on one is seen on the other, and a logout or revocation on either ends it on both, on
//! the very next request, although each instance answers repeat requests from its session cache
//! (generations in Redis, `server::session_cache`). Runs over
//! PostgreSQL when the test command has started one (`APP_TEST_POSTGRES_URL`), else over one SQLite file.

use crate::common::*;
use axum::http::StatusCode;

async fn instance(dir: tempfile::TempDir, database_url: &str, redis_url: &str) -> TestApp {
    let (db, redis) = (database_url.to_string(), redis_url.to_string());
    spawn_in(dir, move |s| {
        s.database_url = db;
        s.session.store = server::config::SessionStoreKind::Redis;
        s.session.redis_url = Some(redis);
    })
    .await
}

async fn shared_database(dir: &std::path::Path) -> String {
    match db::testing::postgres().await {
        Some(pg) => pg.url,
        None => format!("sqlite://{}", dir.join("shared.db").display()),
    }
}

#[test]
fn a_session_made_on_one_instance_works_and_ends_on_the_other() {
    let port = free_port();
    let mut redis = Redis::start_on(port);
    let redis_url = format!("redis://127.0.0.1:{port}");
    block_on(async {
        let shared = tempfile::tempdir().unwrap();
        let database = shared_database(shared.path()).await;
        let a = instance(tempfile::tempdir().unwrap(), &database, &redis_url).await;
        let b = instance(tempfile::tempdir().unwrap(), &database, &redis_url).await;
        assert_eq!(a.state.session_store.kind(), "redis");
        assert_eq!(a.state.sessions.cache.kind(), "redis");

        a.create_user("ivy", "ivy-password-1").await;
        let cookie = a.login("ivy", "ivy-password-1").await;
        for app in [&a, &b] {
            for _ in 0..2 {
                let res = app.send(get("/success", Some(&cookie))).await;
                assert_eq!(res.status(), StatusCode::OK, "the session is seen on both instances");
                assert!(body_text(res).await.contains("ivy"));
            }
        }
        let (hits, _) = a.state.sessions.cache.counts();
        assert!(hits >= 1, "A answered the repeat from memory");

        // Sign out on B; A refuses the same cookie.
        let res = b.send(post_form("/logout", &[], Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let res = a.send(get("/success", Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "logged out on B means logged out on A");
        assert!(location(&res).starts_with("/login"));

        // Revocation crosses instances too: a second session revoked from A is gone on B.
        let first = a.login("ivy", "ivy-password-1").await;
        let second = b.login("ivy", "ivy-password-1").await;
        // A replays its page for `first` (`server::page_cache`), yet shows a sign-in on B at once.
        let listed = |html: String| html.matches(r#"name="handle" value=""#).count();
        for _ in 0..2 {
            assert_eq!(listed(body_text(a.send(get("/success", Some(&first))).await).await), 1);
        }
        assert!(a.state.sessions.cache.pages.counts().0 >= 1, "A replayed the page");
        let _third = b.login("ivy", "ivy-password-1").await;
        assert_eq!(listed(body_text(a.send(get("/success", Some(&first))).await).await), 2, "B's sign-in listed on A's next page");
        for _ in 0..2 {
            assert_eq!(b.send(get("/success", Some(&second))).await.status(), StatusCode::OK);
        }
        let (hits_before, _) = b.state.sessions.cache.counts();
        assert_eq!(b.send(get("/success", Some(&second))).await.status(), StatusCode::OK);
        assert_eq!(b.state.sessions.cache.counts().0, hits_before + 1, "B holds the second session in memory");
        let res = a.send(post_form("/sessions/revoke-others", &[], Some(&first))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(b.send(get("/success", Some(&second))).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(b.send(get("/success", Some(&first))).await.status(), StatusCode::OK);

        let (status, body) = {
            let res = b.send(get("/readyz", None)).await;
            (res.status(), body_text(res).await)
        };
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains(r#""redis":"ok""#), "{body}");
    });
    redis.stop();
}
