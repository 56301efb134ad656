//! Crash tests with real processes: SIGKILL a pipeline mid-run and check that nothing is lost.

use crate::common;
use contract::Owner;

use common::*;
use notify::sink::{Sink, SinkConfig};
use notify::*;
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn wait_sink(sink: &Sink, at_least: u64, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while sink.stats().unique_ids < at_least {
        assert!(std::time::Instant::now() < deadline, "the sink saw only {:?}", sink.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_on_the_sqlite_queue_then_restart_delivers_everything() {
    const COUNT: u64 = 100_000;
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let queue = format!("sqlite://{}", dir.path().join("notify.db").display());
    let args = ["--queue", &queue, "--webhook", &sink.url(), "--count", "100000", "--concurrency", "64"];

    let mut first = Node::spawn(&args);
    let sink_ref = &sink;
    tokio::task::block_in_place(|| wait_sink(sink_ref, 30_000, Duration::from_secs(60)));
    first.sigkill();
    let at_kill = sink.stats();
    assert!(at_kill.unique_ids < COUNT, "killed before the end: {at_kill:?}");

    let mut second = Node::spawn(&args);
    let mut out = BufReader::new(second.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("resumed run 1 at "), "the restarted process resumes the run: {line}");
    let status = tokio::task::block_in_place(|| second.wait(Duration::from_secs(120)));
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(rest.contains("run 1 completed delivered=100000 dead=0"), "{rest}");

    let counts = sink.counts();
    let missing: Vec<u64> = (1..=COUNT).filter(|i| !counts.contains_key(&format!("emb_{i}"))).collect();
    assert!(missing.is_empty(), "{} never delivered, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert_eq!(counts.len() as u64, COUNT, "no ids beyond the run: nothing was produced twice");
    let stats = sink.stats();
    // Duplicates come only from deliveries in flight or not yet acknowledged at the kill: at most
    // the concurrency, the leased batch and its prefetch, and one report batch.
    let window = 64 + 2 * 1024 + 4096;
    assert!(stats.duplicates <= window, "{stats:?}");
    assert!(counts.values().all(|n| *n <= 2), "a duplicate is delivered at most twice");
    eprintln!("at kill: {at_kill:?}; after restart: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_redis_workers_killed_the_other_reclaims_its_messages() {
    const COUNT: u64 = 20_000;
    let redis = Redis::start();
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { delay_ms: 2, ..SinkConfig::default() }).await.unwrap();
    let worker = |name: &'static str| {
        Node::spawn(&[
            "--worker-only",
            "--redis",
            &redis.url,
            "--webhook",
            &sink.url(),
            "--consumer",
            name,
            "--reclaim-ms",
            "3000",
            "--concurrency",
            "32",
        ])
    };
    let mut a = worker("worker-a");
    let mut b = worker("worker-b");
    for n in [&mut a, &mut b] {
        let mut line = String::new();
        BufReader::new(n.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "worker ready");
    }

    // This process only produces (an API node): no workers of its own.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.workers = false;
    cfg.redis_url = Some(redis.url.clone());
    let svc = service(cfg).await;
    let p = SimParams { count: COUNT, rate: Rate::Max, mix: ChannelMix::only(Channel::Webhook), backend: Backend::Redis, ..SimParams::default() };
    let run = svc.start_run(&Owner::from("alice"), p).await.unwrap();

    let sink_ref = &sink;
    tokio::task::block_in_place(|| wait_sink(sink_ref, 4_000, Duration::from_secs(60)));
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Summed over every lane (a stream per class and owner); a lane emptied and deleted holds none.
    let pending_on_a = |mut conn: redis::aio::MultiplexedConnection| async move {
        let lanes: Vec<String> = redis::cmd("SMEMBERS").arg("notify:lanes").query_async(&mut conn).await.unwrap();
        let mut n = 0;
        for lane in lanes {
            let v: Result<Vec<redis::Value>, _> =
                redis::cmd("XPENDING").arg(&lane).arg("workers").arg("-").arg("+").arg(100_000).arg("worker-a").query_async(&mut conn).await;
            n += v.map(|v| v.len()).unwrap_or(0);
        }
        n
    };
    // Killed while it holds messages (it leases only for free delivery slots, so it may be between
    // leases at any one moment).
    wait_for("worker a to hold messages", Duration::from_secs(30), || async { pending_on_a(conn.clone()).await > 0 }).await;
    a.sigkill();
    let at_kill = sink.stats();
    let stranded = pending_on_a(conn.clone()).await;
    assert!(stranded > 0, "the killed worker held messages it never acknowledged");

    wait_for("the run to complete on the surviving worker", Duration::from_secs(90), || async {
        svc.run_snapshot(run).await.unwrap().unwrap().status == RunStatus::Completed
    })
    .await;
    let snap = svc.run_snapshot(run).await.unwrap().unwrap();
    assert_eq!((snap.produced, snap.delivered, snap.dead_lettered), (COUNT, COUNT, 0), "{snap:?}");
    let counts = sink.counts();
    let missing = (1..=COUNT).filter(|i| !counts.contains_key(&format!("red_{i}"))).count();
    assert_eq!(missing, 0, "every notification reached the sink");
    assert_eq!(counts.len() as u64, COUNT);
    let stats = sink.stats();
    assert!(stats.duplicates <= 32 + 2 * 1024 + 4096, "{stats:?}");
    assert_eq!(pending_on_a(conn.clone()).await, 0, "its {stranded} pending messages were reclaimed");
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    wait_for("the stream to be empty", Duration::from_secs(5), || async { svc.backlog(Backend::Redis) == 0 }).await;
    eprintln!("at kill: {at_kill:?}, {stranded} pending on the killed worker; at the end: {stats:?}");
    b.sigkill();
    svc.shutdown().await;
}
