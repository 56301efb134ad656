//! What the workspace's tests share (a dev-dependency only): free loopback ports, a private Debian
//! `redis-server` per test, child processes killed on drop, polling until a condition holds (a
//! condition that never comes true fails the test instead of hanging it), the per-engine test
//! databases of [`db::testing`] (a fresh SQLite file, and a fresh PostgreSQL database when the test
//! command's throwaway cluster is up: `scripts/pg.sh`), and [`json_schema`], a check of a value against
//! the small JSON Schema subset our published schemas use. The server's `TestApp` (its router over a
//! fresh database, with `create_user`, `login` and request helpers) is in `server/tests/it/common.rs`,
//! built on these.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use db::testing::{engines, postgres, sqlite, TestDb};

pub mod json_schema;

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed and waited for when dropped, so a failing test leaves nothing running.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private redis-server (Debian's; `scripts/setup.sh` installs it) on a loopback port, nothing
/// persisted, stopped on drop. Missing `redis-server` fails the test loudly.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
}

impl Redis {
    /// On a free port.
    pub fn start() -> Redis {
        Redis::start_on(free_port())
    }

    /// On `port` (a test that restarts Redis on the same address).
    pub fn start_on(port: u16) -> Redis {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed for these tests (scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child: Some(child), port, url: format!("redis://127.0.0.1:{port}") }
    }

    /// Kills it now (SIGKILL: as a crash would) and waits for it to go.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Python that runs the test servers written in Python (`scripts/smtp_capture.py`,
/// `scripts/push_service.py`): `APP_TEST_PYTHON`, else the test command's venv (`.run/venv`, made by
/// `scripts/setup.sh` with their PyPI packages), else `python3`.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("APP_TEST_PYTHON") {
        return p.into();
    }
    let venv = workspace_root().join(".run/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// The repository's top directory.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// One of the repository's Python test servers (`scripts/<script>`), started with `args` plus
/// `--listen 127.0.0.1:0 --ready-file F`; returns once it has written its address to the file.
/// Killed on drop. A missing Python package fails the test with the server's own error.
pub fn python_server(script: &str, args: &[&str], dir: &std::path::Path) -> (Reaped, std::net::SocketAddr) {
    let ready = dir.join(format!("{script}.ready"));
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(python())
        .arg(workspace_root().join("scripts").join(script))
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} for scripts/{script}: {e} (scripts/setup.sh makes .run/venv)", python().display()));
    let mut child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            if let Ok(addr) = text.trim().parse() {
                return (child, addr);
            }
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("scripts/{script} exited with {status} before it was ready (is .run/venv set up? scripts/setup.sh)");
        }
        assert!(Instant::now() < deadline, "scripts/{script} was not ready within 20 s");
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// A real SMTP server on loopback (`scripts/smtp_capture.py`, aiosmtpd) that keeps every message it
/// accepts in a Maildir. Recipients whose local part starts with `defer` get `451`, with `reject` get
/// `550`. Stopped on drop.
pub struct Smtp {
    _child: Reaped,
    pub addr: std::net::SocketAddr,
    pub maildir: std::path::PathBuf,
}

impl Smtp {
    pub fn start(dir: &std::path::Path) -> Smtp {
        Smtp::start_with(dir, &[])
    }

    /// With more of the script's options (`--tls-cert C --tls-key K` offers STARTTLS).
    pub fn start_with(dir: &std::path::Path, args: &[&str]) -> Smtp {
        std::fs::create_dir_all(dir).expect("the SMTP server's folder");
        let maildir = dir.join("maildir");
        let mut all = vec!["--maildir", maildir.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        let (child, addr) = python_server("smtp_capture.py", &all, dir);
        Smtp { _child: child, addr, maildir }
    }

    /// Every message delivered so far, raw, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<_> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir.join(d)).ok())
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files.into_iter().filter_map(|(_, p)| std::fs::read(p).ok()).collect()
    }
}

/// A Web Push service on loopback (`scripts/push_service.py`) standing in for a browser and its push
/// service: it hands out subscriptions, and decrypts and checks what is pushed to them with an
/// implementation of its own (PyPI `http_ece`, `cryptography`). Stopped on drop.
pub struct PushService {
    _child: Reaped,
    pub addr: std::net::SocketAddr,
    http: reqwest::Client,
}

impl PushService {
    pub fn start(dir: &std::path::Path) -> PushService {
        let (child, addr) = python_server("push_service.py", &[], dir);
        PushService { _child: child, addr, http: reqwest::Client::new() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&serde_json::Value>) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method, format!("http://{}{path}", self.addr));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let res = req.send().await.expect("the push service answers");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("its answer");
        if bytes.is_empty() {
            return (status, serde_json::Value::Null);
        }
        (status, serde_json::from_slice(&bytes).expect("the push service answers JSON"))
    }

    /// A new subscription, as the push service hands it out (`id`, and `endpoint` and `keys` as in a
    /// browser's `PushSubscription.toJSON()`); `options` may say how pushes to it are answered
    /// (`{"answer": 410}`, `{"answer": 429, "retry_after": 0}`).
    pub async fn subscribe(&self, options: serde_json::Value) -> serde_json::Value {
        let (status, sub) = self.call(reqwest::Method::POST, "/subscriptions", Some(&options)).await;
        assert_eq!(status, 201, "{sub}");
        sub
    }

    /// `{"messages": [...], "failures": [...]}`: what subscription `id` received, decrypted, and every
    /// check a push failed.
    pub async fn received(&self, id: &str) -> serde_json::Value {
        self.call(reqwest::Method::GET, &format!("/messages/{id}"), None).await.1
    }

    /// The browser unsubscribes: later pushes to it are answered 410 Gone.
    pub async fn unsubscribe(&self, id: &str) {
        let (status, _) = self.call(reqwest::Method::DELETE, &format!("/subscriptions/{id}"), None).await;
        assert_eq!(status, 204);
    }
}

/// Polls `check` every 50 ms until it is true; past `timeout`, fails the test naming `what`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_and_redis_answers_until_stopped() {
        let port = free_port();
        drop(TcpListener::bind(("127.0.0.1", port)).expect("the port is free"));
        let mut redis = Redis::start();
        assert!(TcpStream::connect(("127.0.0.1", redis.port)).is_ok());
        redis.stop();
        assert!(TcpStream::connect(("127.0.0.1", redis.port)).is_err(), "stopped means gone");
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for never")]
    async fn waiting_for_what_never_happens_fails() {
        wait_for("never", Duration::from_millis(120), || async { false }).await;
    }
}
