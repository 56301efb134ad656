//! Shared test helpers: a pipeline over a fresh SQLite file, a real redis-server on a free port, and
//! polling with a deadline (a condition that never comes true fails the test instead of hanging it).
#![allow(dead_code)]

use notify::{NotifyService, PipelineConfig, RetrySchedule};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn config(dir: &tempfile::TempDir) -> PipelineConfig {
    PipelineConfig {
        queue_url: format!("sqlite://{}", dir.path().join("notify.db").display()),
        retry: RetrySchedule { base_ms: 10, max_delay_ms: 100, ..RetrySchedule::default() },
        ..PipelineConfig::default()
    }
}

pub async fn service(cfg: PipelineConfig) -> NotifyService {
    let s = NotifyService::new(cfg).await.expect("service");
    s.start().await.expect("start");
    s
}

pub use testkit::{free_port, wait_for, Redis};

/// The attempts of `id` once it has settled (delivered, dead-lettered or expired).
pub async fn settled(svc: &NotifyService, id: notify::NotificationId) -> Vec<notify::Attempt> {
    wait_for("the notification to settle", Duration::from_secs(15), || async {
        svc.attempts(id).await.unwrap_or_default().iter().any(|a| a.outcome != notify::AttemptOutcome::Retrying)
    })
    .await;
    svc.attempts(id).await.unwrap()
}

/// A child process killed on drop (the tests SIGKILL it on purpose before that).
pub struct Node(pub Child);

impl Node {
    pub fn spawn(args: &[&str]) -> Node {
        let child = Command::new(env!("CARGO_BIN_EXE_notify-node"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn notify-node");
        Node(child)
    }

    pub fn sigkill(&mut self) {
        // Child::kill sends SIGKILL on Unix: no destructor, no shutdown, no flush.
        self.0.kill().expect("SIGKILL");
        let _ = self.0.wait();
    }

    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "notify-node did not finish within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap();
    kb * 1024
}

/// Reads one HTTP/1.1 request from `conn` (its head and the body its length names) and answers its
/// head, or `None` if the peer went away first. For the tests' hand-written receivers.
pub async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = conn.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Some(text[..end].to_string());
            }
        }
    }
}
