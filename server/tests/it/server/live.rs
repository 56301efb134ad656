//! The dashboard's live stream through the real router: a run's owner gets server-sent events carrying
//! the run's state (and the stream ends once the run has finished); anyone else gets nothing.

use crate::common::*;
use axum::http::{header, StatusCode};
use contract::Owner;

fn sim(count: u64) -> notify::SimParams {
    notify::SimParams { count, rate: notify::Rate::Max, mix: notify::ChannelMix::only(notify::Channel::Noop), ..Default::default() }
}

#[test]
fn the_owner_follows_a_run_until_it_completes() {
    block_on(async {
        let app = spawn().await;
        app.create_user("olga", "password-of-olga").await;
        app.state.notify.start().await.unwrap();
        let cookie = app.login("olga", "password-of-olga").await;
        let id = app.state.notify.start_run(&Owner::from("olga"), sim(50)).await.unwrap();

        let res = app.send(get(&format!("/notifications/runs/{id}/events"), Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(res.headers()["x-accel-buffering"], "no");
        // The stream ends by itself after the final state, so the whole body can be read.
        let body = body_text(res).await;
        let events: Vec<app::notify_api::RunView> =
            body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).expect("each event is a RunView")).collect();
        let last = events.last().expect("at least one event");
        assert_eq!(last.id, id);
        assert_eq!(last.status, "completed");
        assert_eq!(last.delivered, 50);
        assert!(events[..events.len() - 1].iter().all(|e| e.is_running()), "only the last event is final");
        app.state.notify.shutdown().await;
    })
}

#[test]
fn nobody_else_can_follow_a_run() {
    block_on(async {
        let app = spawn().await;
        app.create_user("olga", "password-of-olga").await;
        app.create_user("pete", "password-of-pete").await;
        let id = app.state.notify.start_run(&Owner::from("olga"), sim(10)).await.unwrap();
        let pete = app.login("pete", "password-of-pete").await;
        let res = app.send(get(&format!("/notifications/runs/{id}/events"), Some(&pete))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = app.send(get("/notifications/runs/999999/events", Some(&pete))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // Signed out: sent to the login page like any protected page.
        let res = app.send(get(&format!("/notifications/runs/{id}/events"), None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(location(&res).starts_with("/login?next="));
        app.state.notify.shutdown().await;
    })
}

#[test]
fn the_walkthrough_is_served() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(get("/docs/notifications", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(body_text(res).await.contains("a million"));
    })
}
