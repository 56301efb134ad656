//! Pipeline benchmarks (run in release mode; figures go to docs/benchmarks.md):
//!
//! ```text
//! cargo run --release -p notify --example bench -- sqlite 1000000     # no-op channel, embedded queue
//! cargo run --release -p notify --example bench -- webhook 200000     # signed POSTs to the in-process sink
//! cargo run --release -p notify --example bench -- redis 1000000 redis://127.0.0.1:6390   # 2 worker processes
//! cargo run --release -p notify --example bench -- paced 60           # 1M/hour for 60 s
//! cargo run --release -p notify --example bench -- email 20000 16     # real SMTP to aiosmtpd, pool of 16
//! ```
//! Each prints the wall time from the run's start until every notification is delivered, the
//! throughput, the run's latency percentiles and the peak resident memory of this process.

use contract::Owner;
use notify::sink::{Sink, SinkConfig};
use notify::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("sqlite");
    let n: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PipelineConfig { queue_url: format!("sqlite://{}", dir.path().join("bench.db").display()), ..PipelineConfig::default() };

    let peak = Arc::new(AtomicU64::new(0));
    {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    if scenario == "email" {
        let pool: u32 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(16);
        email(cfg, n, pool, dir.path(), peak).await;
        return;
    }

    let mut _sink = None;
    let mut _workers = vec![];
    let params = match scenario {
        "sqlite" => SimParams { count: n, rate: Rate::Max, mix: ChannelMix::only(Channel::Noop), ..SimParams::default() },
        "webhook" => {
            let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig::default()).await.unwrap();
            cfg.webhook.url = sink.url();
            cfg.concurrency = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(128);
            _sink = Some(sink);
            SimParams { count: n, rate: Rate::Max, mix: ChannelMix::only(Channel::Webhook), ..SimParams::default() }
        }
        "redis" => {
            let url = args.get(2).cloned().unwrap_or_else(|| "redis://127.0.0.1:6379".into());
            cfg.redis_url = Some(url.clone());
            cfg.redis_prefix = format!("bench{}", std::process::id());
            cfg.workers = false;
            let node = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("notify-node");
            for i in 0..2 {
                // The workers use the same key prefix through NOTIFY_PREFIX-less defaults, so pass it on.
                let child = Command::new(&node)
                    .args(["--worker-only", "--redis", &url, "--consumer", &format!("bench-{i}"), "--prefix", &cfg.redis_prefix])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("build notify-node first: cargo build --release -p notify --bins");
                _workers.push(child);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            SimParams { count: n, rate: Rate::Max, mix: ChannelMix::only(Channel::Noop), backend: Backend::Redis, ..SimParams::default() }
        }
        "paced" => SimParams { count: 10_000_000, rate: Rate::ONE_MILLION_PER_HOUR, mix: ChannelMix::only(Channel::Noop), ..SimParams::default() },
        other => {
            eprintln!("unknown scenario {other}: sqlite | webhook | redis | paced");
            std::process::exit(2);
        }
    };
    let svc = NotifyService::new(cfg).await.unwrap();
    svc.start().await.unwrap();
    let started = Instant::now();
    let run = svc.start_operator_run(&Owner::from("bench"), params).await.unwrap();

    if scenario == "paced" {
        let secs = n.min(3600);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let s = svc.run_snapshot(run).await.unwrap().unwrap();
        let expected = 1_000_000.0 * secs as f64 / 3600.0;
        println!(
            "paced 1M/hour for {secs} s: produced {} delivered {} (expected {expected:.0}, off by {:+.2}%), p99 end-to-end {} ms, peak RSS {} MB",
            s.produced,
            s.delivered,
            (s.delivered as f64 - expected) / expected * 100.0,
            s.end_to_end_ms.p99,
            peak.load(Ordering::Relaxed) / 1024
        );
        svc.cancel_run(&Owner::from("bench"), run).await.unwrap();
    } else {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let s = svc.run_snapshot(run).await.unwrap().unwrap();
            if started.elapsed().as_secs() > last {
                last = started.elapsed().as_secs();
                eprintln!("{last:>4} s  produced {:>9}  delivered {:>9}  backlog {:>7}", s.produced, s.delivered, s.backlog);
            }
            if s.status != RunStatus::Running {
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "{scenario}: {} delivered in {secs:.2} s = {:.0}/s; attempt p50/p95/p99 {}/{}/{} ms; end-to-end p99 {} ms; dead {}; peak RSS {} MB",
                    s.delivered,
                    s.delivered as f64 / secs,
                    s.latency_ms.p50,
                    s.latency_ms.p95,
                    s.latency_ms.p99,
                    s.end_to_end_ms.p99,
                    s.dead_lettered,
                    peak.load(Ordering::Relaxed) / 1024
                );
                break;
            }
        }
    }
    if let Some(sink) = &_sink {
        println!("sink: {:?}", sink.stats());
    }
    svc.shutdown().await;
    for mut w in _workers {
        let _ = w.kill();
    }
}

/// Every attempt's SMTP latency (µs) and enqueue-to-accepted time (ms), as attempts are reported.
#[derive(Default)]
struct Timings(std::sync::Mutex<(Vec<u64>, Vec<i64>)>);

impl AttemptObserver for Timings {
    fn on_attempt<'a>(&'a self, r: &'a AttemptReport) -> BoxFuture<'a, ()> {
        if r.attempt.outcome == AttemptOutcome::Delivered {
            let mut t = self.0.lock().unwrap();
            t.0.push(r.attempt.latency_us);
            t.1.push(r.attempt.at_ms - r.job.created_ms);
        }
        Box::pin(async {})
    }
}

fn percentile<T: Copy + Ord + Default>(v: &mut [T], p: f64) -> T {
    v.sort_unstable();
    v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default()
}

/// `n` e-mails from our pooled SMTP sender to a real SMTP server on loopback (aiosmtpd in count-only
/// mode, scripts/smtp_capture.py, run by the venv of scripts/setup.sh), enqueued through the API path
/// in batches as fast as they are taken.
async fn email(mut cfg: PipelineConfig, n: u64, pool: u32, dir: &std::path::Path, peak: Arc<AtomicU64>) {
    let stats = dir.join("smtp-stats.json");
    let (_smtp, addr) = testkit::python_server("smtp_capture.py", &["--count-only", "--stats-file", stats.to_str().unwrap()], dir);
    cfg.email = EmailConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: SmtpTls::None,
        from: "Bench <bench@example.org>".into(),
        pool_size: pool,
        ..EmailConfig::default()
    };
    cfg.concurrency = pool as usize * 2;
    let svc = NotifyService::new(cfg).await.unwrap();
    let timings = Arc::new(Timings::default());
    svc.add_attempt_observer(timings.clone());
    svc.start().await.unwrap();
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(1_000);
        let items = (0..batch)
            .map(|i| {
                NewNotification::new(
                    Channel::Email,
                    format!("user{}@example.com", sent + i),
                    serde_json::json!({"subject": "Your receipt", "text": "Thank you for your order.\n\nTotal: 42.00"}),
                )
            })
            .collect();
        match svc.enqueue(items).await {
            Ok(_) => sent += batch,
            Err(NotifyError::Backpressure { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let done = timings.0.lock().unwrap().0.len() as u64;
        if started.elapsed().as_secs() > last {
            last = started.elapsed().as_secs();
            eprintln!("{last:>4} s  delivered {done:>9}");
        }
        if done >= n {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "not all delivered within 10 minutes ({done} of {n})");
    }
    let secs = started.elapsed().as_secs_f64();
    let (mut smtp, mut e2e) = std::mem::take(&mut *timings.0.lock().unwrap());
    let received = std::fs::read_to_string(&stats).unwrap_or_default();
    println!(
        "email: {n} accepted by the SMTP server in {secs:.2} s = {:.0}/s with a pool of {pool}; SMTP send p50/p99 {:.2}/{:.2} ms; \
         enqueue to accepted p50/p99 {}/{} ms; peak RSS {} MB; server says {}",
        n as f64 / secs,
        percentile(&mut smtp, 0.5) as f64 / 1000.0,
        percentile(&mut smtp, 0.99) as f64 / 1000.0,
        percentile(&mut e2e, 0.5),
        percentile(&mut e2e, 0.99),
        peak.load(Ordering::Relaxed) / 1024,
        received.trim()
    );
    svc.shutdown().await;
}
