//! Liveness and readiness through the real router: `/readyz` answers 200 while the database (and Redis,
//! when configured) answer, and 503 naming Redis once a real redis-server is gone.

use crate::common::*;
use axum::http::StatusCode;

async fn readiness(app: &TestApp) -> (StatusCode, serde_json::Value) {
    let res = app.send(get("/readyz", None)).await;
    let status = res.status();
    (status, serde_json::from_str(&body_text(res).await).unwrap())
}

#[test]
fn ready_without_redis_when_none_is_configured() {
    block_on(async {
        let app = spawn().await;
        assert_eq!(app.send(get("/healthz", None)).await.status(), StatusCode::OK);
        let (status, body) = readiness(&app).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["database"], "ok");
        assert_eq!(body["redis"], "not configured");
    })
}

#[test]
fn not_ready_once_redis_is_gone() {
    let port = free_port();
    let mut redis = Redis::start_on(port);
    block_on(async {
        let app = spawn_with(|s| s.notify.redis_url = Some(format!("redis://127.0.0.1:{port}"))).await;
        let (status, body) = readiness(&app).await;
        assert_eq!((status, body["redis"].as_str()), (StatusCode::OK, Some("ok")));
        redis.stop();
        let (status, body) = readiness(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["redis"], "unavailable");
        assert_eq!(body["ready"], false);
        assert_eq!(body["database"], "ok");
    });
}
