//! Retention (issue 17): one pruner for every store that grows with use, so the product runs for months
//! at its headline rate on a disk that stops growing. Each store keeps its rows for its own setting
//! (`APP_RETENTION__…`) after the moment that ages them; the domain crates name their tables
//! (`hooks::RETAINED_MESSAGES`, …) and `notify` prunes its queue file itself.
//!
//! Every pass deletes in batches of `batch_rows`, pausing between them, so a delivery waits at most
//! one batch. The embedded queue file is each instance's own, so every instance prunes its file (and
//! Redis's dead letters with it, by a script that is atomic, so two instances never delete one
//! twice); the app database is shared, so one instance at a time prunes it: the holder of the
//! `prune_lease` row, renewed between batches and lapsing if its holder dies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contract::ops::{FileUsage, StorageReport, StoreUsage};

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use sqlx::AnyPool;

use crate::config::RetentionSettings;
use crate::now_ms;

/// How a store is pruned.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// One of the notification pipeline's (its file, and Redis when configured).
    Notify(notify::Retained),
    /// Tables of the app database, pruned in order.
    Tables(&'static [db::Prunable]),
}

/// A store and how long it keeps a row.
#[derive(Debug, Clone)]
pub struct Store {
    pub name: &'static str,
    pub keep: Duration,
    kind: Kind,
}

impl Store {
    fn shared(&self) -> bool {
        matches!(self.kind, Kind::Tables(_))
    }
}

/// Every store, with the retention `s` gives it.
pub fn stores(s: &RetentionSettings) -> Vec<Store> {
    let secs = Duration::from_secs;
    let notify = |r: notify::Retained, keep: u64| Store { name: r.as_str(), keep: secs(keep), kind: Kind::Notify(r) };
    let tables = |name: &'static str, keep: u64, t: &'static [db::Prunable]| Store { name, keep: secs(keep), kind: Kind::Tables(t) };
    vec![
        notify(notify::Retained::Delivered, s.delivered_secs),
        notify(notify::Retained::DeadLetters, s.dead_letters_secs),
        notify(notify::Retained::Attempts, s.attempts_secs),
        notify(notify::Retained::Runs, s.runs_secs),
        tables("webhook_messages", s.webhook_messages_secs, hooks::RETAINED_MESSAGES),
        tables("inbound_webhook_ids", s.inbound_ids_secs, hooks::RETAINED_INBOUND_IDS),
        tables("workflow_inbox", s.workflow_inbox_secs, flows::RETAINED_INBOX),
        tables("workflow_runs", s.workflow_runs_secs, flows::RETAINED_RUNS),
        tables("demo_customers", s.workflow_runs_secs, crate::api::host::RETAINED_DEMO_CUSTOMERS),
        tables("idempotency_answers", s.idempotency_secs, crate::api::idempotency::RETAINED),
        tables("api_tokens", s.tokens_secs, auth::RETAINED_TOKENS),
        // Expired sessions are refused on read; their rows only take room.
        tables("sessions", 0, auth::RETAINED_SESSIONS),
    ]
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    /// Rows deleted, by store.
    pub pruned: BTreeMap<&'static str, u64>,
    /// Whether this instance held the lease (and so pruned the shared stores).
    pub held_lease: bool,
}

/// The report as a plain-text table, for `server retention`.
pub fn table(report: &StorageReport) -> String {
    use contract::ops::{human_age, human_bytes, human_secs};
    use std::fmt::Write;
    let mut out = format!("{:<24} {:>10} {:>10} {:>10} {:>8} {:>10}\n", "store", "rows", "bytes", "oldest", "keeps", "pruned");
    let now = now_ms();
    for s in &report.stores {
        let bytes = s.bytes.map(human_bytes).unwrap_or_else(|| "-".into());
        let oldest = s.oldest_ms.map(|t| human_age(((now - t).max(0) / 1000) as u64)).unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "{:<24} {:>10} {:>10} {:>10} {:>8} {:>10}", s.name, s.rows, bytes, oldest, human_secs(s.keep_secs), s.pruned);
    }
    for f in &report.files {
        let _ = writeln!(out, "file {:<19} {:>21}", f.name, human_bytes(f.bytes));
    }
    out
}

pub struct Pruner {
    pool: AnyPool,
    notify: notify::NotifyService,
    stores: Vec<Store>,
    batch: u32,
    interval: Duration,
    /// Who this instance is, in the lease row.
    holder: String,
    registry: Registry,
    pruned_total: IntCounterVec,
    rows: IntGaugeVec,
    oldest_age: IntGaugeVec,
    file_bytes: IntGaugeVec,
    store_bytes: IntGaugeVec,
    /// What the last pass measured, and when the next one starts.
    report: Mutex<StorageReport>,
}

/// Pause between batches: other writers go first.
const PAUSE: Duration = Duration::from_millis(10);
/// How long a lease lasts without renewal: a pass renews it between batches.
const LEASE: Duration = Duration::from_secs(120);
const LEASE_NAME: &str = "retention";
/// Free pages handed back to the file system after each batch (4 KiB each).
const PAGES_PER_BATCH: u32 = 4096;

impl Pruner {
    pub fn new(pool: AnyPool, notify: notify::NotifyService, settings: &RetentionSettings) -> Pruner {
        let registry = Registry::new();
        let pruned_total = IntCounterVec::new(Opts::new("app_pruned_total", "Rows deleted by retention."), &["store"]).expect("valid metric");
        let rows = IntGaugeVec::new(Opts::new("app_store_rows", "Rows held, as of the last retention pass."), &["store"]).expect("valid metric");
        let oldest_age =
            IntGaugeVec::new(Opts::new("app_store_oldest_age_seconds", "Age of the oldest row, as of the last retention pass."), &["store"])
                .expect("valid metric");
        let file_bytes = IntGaugeVec::new(Opts::new("app_storage_file_bytes", "Bytes on disk of each SQLite file (with its WAL)."), &["file"])
            .expect("valid metric");
        let store_bytes = IntGaugeVec::new(
            Opts::new("app_store_bytes", "Bytes on disk of each store's tables and indexes, as of the last retention pass."),
            &["store"],
        )
        .expect("valid metric");
        for m in [
            Box::new(pruned_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rows.clone()),
            Box::new(oldest_age.clone()),
            Box::new(file_bytes.clone()),
            Box::new(store_bytes.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        let stores = stores(settings);
        for s in &stores {
            pruned_total.with_label_values(&[s.name]);
        }
        Pruner {
            pool,
            notify,
            stores,
            batch: settings.batch_rows.max(1),
            interval: Duration::from_secs(settings.interval_secs.max(1)),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()),
            registry,
            pruned_total,
            rows,
            oldest_age,
            file_bytes,
            store_bytes,
            report: Mutex::new(StorageReport::default()),
        }
    }

    /// Takes (or renews) the lease on the shared stores; `false` while another instance holds it.
    async fn take_lease(&self) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO prune_lease (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE prune_lease.until_ms < $4 OR prune_lease.holder = excluded.holder",
        )
        .bind(LEASE_NAME)
        .bind(&self.holder)
        .bind(now + LEASE.as_millis() as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn drop_lease(&self) {
        let _ = sqlx::query("UPDATE prune_lease SET until_ms = 0 WHERE name = $1 AND holder = $2")
            .bind(LEASE_NAME)
            .bind(&self.holder)
            .execute(&self.pool)
            .await;
    }

    /// One batch of `store`; returns rows deleted.
    async fn batch_of(&self, store: &Store, before_ms: i64) -> Result<u64, String> {
        match store.kind {
            Kind::Notify(r) => self.notify.prune(r, before_ms, self.batch as usize).await.map_err(|e| e.to_string()),
            Kind::Tables(tables) => {
                // Tables in order (a message's log before the message): the first with old rows left.
                for t in tables {
                    let n = t.prune(&self.pool, before_ms, self.batch).await.map_err(|e| format!("{}: {e}", t.table))?;
                    if n > 0 {
                        db::give_back_pages(&self.pool, PAGES_PER_BATCH).await.map_err(|e| e.to_string())?;
                        return Ok(n);
                    }
                }
                Ok(0)
            }
        }
    }

    /// Prunes `store` to its cut-off, a batch at a time; stops early if the lease is lost.
    async fn prune_store(&self, store: &Store, now: i64) -> Result<u64, String> {
        let before_ms = now - store.keep.as_millis() as i64;
        let mut total = 0;
        loop {
            let n = self.batch_of(store, before_ms).await?;
            total += n;
            self.pruned_total.with_label_values(&[store.name]).inc_by(n);
            if n == 0 {
                return Ok(total);
            }
            tokio::time::sleep(PAUSE).await;
            if store.shared() && !self.take_lease().await.map_err(|e| e.to_string())? {
                return Ok(total);
            }
        }
    }

    /// One pass over every store: this instance's queue file always, the shared stores if it gets the
    /// lease. Failures are logged per store and the pass goes on.
    pub async fn pass(&self) -> PassReport {
        let now = now_ms();
        let held_lease = match self.take_lease().await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "retention: could not take the lease");
                false
            }
        };
        let mut report = PassReport { held_lease, ..PassReport::default() };
        for store in &self.stores {
            if store.shared() && !report.held_lease {
                continue;
            }
            match self.prune_store(store, now).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(store = store.name, rows = n, "retention: pruned");
                    }
                    report.pruned.insert(store.name, n);
                }
                Err(e) => tracing::warn!(store = store.name, error = %e, "retention: prune failed"),
            }
        }
        if report.held_lease {
            self.drop_lease().await;
        }
        self.measure().await;
        report
    }

    /// Rows, bytes and the oldest row of every store, and the files' sizes, for `/metrics` and
    /// [`Self::report`]. A store that cannot be measured keeps its last figures (and logs why).
    pub async fn measure(&self) {
        let now = now_ms();
        let previous = self.report();
        let mut stores = Vec::with_capacity(self.stores.len());
        for store in &self.stores {
            let size = match store.kind {
                Kind::Notify(r) => self.notify.stored(r).await.map(|s| (s.rows, s.bytes, s.oldest_ms)).map_err(|e| e.to_string()),
                Kind::Tables(tables) => self.tables_size(tables).await,
            };
            let pruned = self.pruned_total.with_label_values(&[store.name]).get();
            let usage = match size {
                Ok((rows, bytes, oldest_ms)) => {
                    self.rows.with_label_values(&[store.name]).set(rows as i64);
                    self.oldest_age.with_label_values(&[store.name]).set(oldest_ms.map_or(0, |t| (now - t).max(0) / 1000));
                    if let Some(b) = bytes {
                        self.store_bytes.with_label_values(&[store.name]).set(b as i64);
                    }
                    StoreUsage { name: store.name.into(), rows, bytes, oldest_ms, keep_secs: store.keep.as_secs(), pruned }
                }
                Err(e) => {
                    tracing::warn!(store = store.name, error = %e, "retention: could not measure");
                    match previous.stores.iter().find(|s| s.name == store.name) {
                        Some(last) => StoreUsage { pruned, ..last.clone() },
                        None => continue,
                    }
                }
            };
            stores.push(usage);
        }
        let mut files = vec![FileUsage { name: "queue".into(), bytes: self.notify.queue_file_bytes() }];
        files.extend(db::file_bytes(&self.pool).map(|bytes| FileUsage { name: "app_db".into(), bytes }));
        for f in &files {
            self.file_bytes.with_label_values(&[&f.name]).set(f.bytes as i64);
        }
        let next_pass_ms = Some(now + self.interval.as_millis() as i64);
        *self.report.lock().expect("report") = StorageReport { measured_ms: Some(now), next_pass_ms, stores, files };
    }

    /// Rows, bytes and the oldest row of a store's tables together.
    async fn tables_size(&self, tables: &[db::Prunable]) -> Result<(u64, Option<u64>, Option<i64>), String> {
        let (mut rows, mut bytes, mut oldest) = (0, 0, None::<i64>);
        for t in tables {
            let (n, first) = t.size(&self.pool).await.map_err(|e| format!("{}: {e}", t.table))?;
            rows += n;
            oldest = [oldest, first].into_iter().flatten().min();
            bytes += db::table_bytes(&self.pool, t.table).await.map_err(|e| format!("{}: {e}", t.table))?;
        }
        Ok((rows, Some(bytes), oldest))
    }

    /// Every store as of the last pass, and when the next pass starts.
    pub fn report(&self) -> StorageReport {
        self.report.lock().expect("report").clone()
    }

    /// One store as of the last pass.
    pub fn store(&self, name: &str) -> Option<StoreUsage> {
        self.report().stores.into_iter().find(|s| s.name == name)
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The pruner's series in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// A pass every `interval`, the first one soon after start.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            loop {
                tick.tick().await;
                self.pass().await;
            }
        })
    }
}
