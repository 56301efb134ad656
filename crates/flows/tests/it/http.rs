//! The `http` step executor against a local server that answers from a script: statuses, retries,
//! bodies as outputs, the URL policy and redirects not followed.

use crate::common;
use contract::Owner;

use async_trait::async_trait;
use common::*;
use flows::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE: Owner = Owner::from_static("alice");

/// Answers each connection with the next scripted (status, extra headers, body); records request heads.
async fn scripted_server(answers: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        for (status, headers, body) in answers {
            let (mut sock, _) = listener.accept().await.unwrap();
            // Read the head, then as much body as it announces.
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end].lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            seen2.lock().unwrap().push(String::from_utf8_lossy(&req).into_owned());
            let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}", body.len());
            sock.write_all(resp.as_bytes()).await.unwrap();
        }
    });
    (format!("http://{addr}"), seen)
}

struct HttpHost(HttpCaller);

#[async_trait]
impl StepHost for HttpHost {
    async fn execute(&self, ctx: &StepContext, action: &ResolvedAction) -> Result<Value, StepError> {
        match action {
            ResolvedAction::Http(req) => self.0.call(req, ctx.timeout).await,
            _ => Err(StepError::permanent("unsupported", "only http here")),
        }
    }
}

fn request(url: &str) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("x-run".into(), "r1".into())],
        body: Some(json!({"a": 1})),
        expect_status: vec![],
    }
}

#[tokio::test]
async fn statuses_bodies_and_retryability() {
    let (base, seen) =
        scripted_server(vec![(201, "", r#"{"id":"c-1"}"#), (404, "", "nope"), (503, "", "busy"), (302, "location: http://169.254.169.254/\r\n", "")])
            .await;
    let caller = HttpCaller::new(HttpCaller::allow_all());
    let t = Duration::from_secs(5);
    assert_eq!(caller.call(&request(&format!("{base}/accounts")), t).await.unwrap(), json!({"status": 201, "body": {"id": "c-1"}}));
    let head = seen.lock().unwrap()[0].clone();
    assert!(head.starts_with("POST /accounts HTTP/1.1"), "{head}");
    assert!(head.contains("x-run: r1") && head.contains("content-type: application/json") && head.ends_with(r#"{"a":1}"#), "{head}");
    let e = caller.call(&request(&base), t).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.retryable, e.message.as_str()), ("http_404", false, "unexpected status 404: nope"));
    let e = caller.call(&request(&base), t).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.retryable), ("http_503", true));
    let e = caller.call(&request(&base), t).await.unwrap_err();
    assert_eq!(e.code, "http_302", "a redirect is an answer, not followed");
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn the_url_policy_is_asked_first_and_connection_failures_are_retryable() {
    let caller = HttpCaller::new(Arc::new(|u: &url::Url| if u.host_str() == Some("127.0.0.1") { Err("private address".into()) } else { Ok(()) }));
    let e = caller.call(&request("http://127.0.0.1:9/x"), Duration::from_secs(1)).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.message.as_str(), e.retryable), ("url_rejected", "private address", false));
    let e = caller.call(&request("ftp://example.com/"), Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(e.code, "invalid_url");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let open = HttpCaller::new(HttpCaller::allow_all());
    let e = open.call(&request(&format!("http://127.0.0.1:{free}/")), Duration::from_secs(2)).await.unwrap_err();
    assert!(e.retryable && e.code == "connect", "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_step_retries_a_503_and_its_response_is_the_step_output() {
    for db in db::testing::engines().await {
        let (base, _) = scripted_server(vec![(503, "", "busy"), (200, "", r#"{"crm_id":7}"#)]).await;
        let store = store(&db).await;
        let engine = Engine::new(store.clone(), Arc::new(HttpHost(HttpCaller::new(HttpCaller::allow_all()))), config("h"));
        engine.spawn().await;
        let d = def(json!({"name": "http", "steps": [{"name": "crm", "retry": {"initial_interval_ms": 10, "max_attempts": 3},
            "action": {"type": "http", "method": "PUT", "url": format!("{base}/customers/{{{{input.id}}}}"), "body": "raw text"}}]}));
        let id = engine.start_run(&ALICE, inline(d, json!({"id": "c9"}))).await.unwrap();
        let run = wait_status(&store, &ALICE, &id, RunStatus::Completed).await;
        assert_eq!(run.steps[0].output, Some(json!({"status": 200, "body": {"crm_id": 7}})));
        let t = engine.timeline(&ALICE, &id).await.unwrap();
        assert_eq!(t.entries[0].attempts[0].error_code.as_deref(), Some("http_503"));
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn proxy_and_framing_headers_are_refused_at_execution_too() {
    // Definitions saved before the rule was: the caller refuses them before connecting.
    let (base, seen) = scripted_server(vec![]).await;
    let caller = HttpCaller::new(HttpCaller::allow_all());
    for (k, v) in [
        ("Host", "app.internal"),
        ("x-forwarded-for", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),
        ("Forwarded", "for=1"),
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close"),
        ("x-a", "a\r\nHost: evil"),
    ] {
        let mut r = request(&base);
        r.headers.push((k.into(), v.into()));
        let e = caller.call(&r, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.retryable), ("header_refused", false), "{k}: {e:?}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// Resolves every name to one address, or refuses it, for the connection only.
struct FixedResolver(Option<std::net::SocketAddr>);

#[derive(Debug)]
struct Refused;
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}
impl std::error::Error for Refused {}

impl reqwest::dns::Resolve for FixedResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let answer = self.0;
        Box::pin(async move {
            match answer {
                Some(a) => Ok(Box::new(std::iter::once(a)) as reqwest::dns::Addrs),
                None => Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

struct ConnectPolicy(Option<std::net::SocketAddr>);

#[async_trait]
impl HttpPolicy for ConnectPolicy {
    async fn check(&self, _url: &url::Url) -> Result<(), String> {
        Ok(())
    }
    fn resolver(&self, _url: &url::Url) -> Option<Arc<dyn reqwest::dns::Resolve>> {
        Some(Arc::new(FixedResolver(self.0)))
    }
    fn refused(&self, e: &reqwest::Error) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if s.is::<Refused>() {
                return true;
            }
            source = s.source();
        }
        false
    }
}

#[tokio::test]
async fn the_connection_goes_through_the_policy_resolver_and_its_refusal_is_final() {
    let (base, seen) = scripted_server(vec![(200, "", "ok")]).await;
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let url = format!("http://crm.example.com:{}/x", addr.port());
    let to_local = HttpCaller::with_policy(Arc::new(ConnectPolicy(Some(addr))));
    assert_eq!(to_local.call(&request(&url), Duration::from_secs(5)).await.unwrap()["status"], 200);
    assert!(seen.lock().unwrap()[0].contains("host: crm.example.com"), "the name went through the policy's resolver");
    let refusing = HttpCaller::with_policy(Arc::new(ConnectPolicy(None)));
    let e = refusing.call(&request(&url), Duration::from_secs(5)).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.retryable), ("url_rejected", false), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_values_are_data_in_the_path_query_and_headers() {
    for db in db::testing::engines().await {
        let (base, seen) = scripted_server(vec![(200, "", "{}")]).await;
        let store = store(&db).await;
        let engine = Engine::new(store.clone(), Arc::new(HttpHost(HttpCaller::new(HttpCaller::allow_all()))), config("t"));
        engine.spawn().await;
        let d = def(json!({"name": "tpl", "steps": [{"name": "crm", "retry": {"max_attempts": 1}, "action": {"type": "http", "method": "GET",
            "url": format!("{base}/customers/{{{{input.id}}}}?q={{{{input.q}}}}"), "headers": {"x-tag": "{{input.tag}}"}}}]}));
        let id = engine.start_run(&ALICE, inline(d.clone(), json!({"id": "../admin", "q": "a&admin=1", "tag": "t1"}))).await.unwrap();
        wait_status(&store, &ALICE, &id, RunStatus::Completed).await;
        let head = seen.lock().unwrap()[0].clone();
        assert!(head.starts_with("GET /customers/..%2Fadmin?q=a%26admin%3D1 HTTP/1.1"), "{head}");
        // A header value that would start a header of its own fails the step before anything is sent.
        let id = engine.start_run(&ALICE, inline(d, json!({"id": "1", "q": "", "tag": "x\r\nHost: evil"}))).await.unwrap();
        let run = wait_status(&store, &ALICE, &id, RunStatus::Failed).await;
        assert_eq!(run.error_code.as_deref(), Some("template"), "{run:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);
        engine.shutdown().await;
    }
}
