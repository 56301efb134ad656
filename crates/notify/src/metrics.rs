//! Prometheus metrics for this process: counters by channel, the backlog by backend, and the delivery
//! latency histogram. Rendered in the text exposition format by [`Metrics::render`].

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::model::{Backend, Channel};

#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    pub enqueued: IntCounterVec,
    pub delivered: IntCounterVec,
    pub failed: IntCounterVec,
    pub retried: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub deferred: IntCounterVec,
    pub expired: IntCounterVec,
    pub backlog: IntGaugeVec,
    pub retries_waiting: IntGaugeVec,
    pub latency: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["channel"]).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let enqueued = counter("notify_enqueued_total", "Notifications accepted into a queue.");
        let delivered = counter("notify_delivered_total", "Notifications delivered.");
        let failed = counter("notify_failed_attempts_total", "Delivery attempts that failed.");
        let retried = counter("notify_retried_total", "Failed attempts scheduled for a retry.");
        let dead_lettered = counter("notify_dead_lettered_total", "Notifications moved to the dead-letter queue.");
        let deferred = counter("notify_deferred_total", "Deliveries put back unattempted: their endpoint's rate limit was reached.");
        let expired = counter("notify_expired_total", "Notifications whose time to live ran out before they were sent (settled unsent).");
        let backlog = IntGaugeVec::new(Opts::new("notify_backlog", "Notifications waiting, in flight or scheduled for retry."), &["backend"])
            .expect("valid metric");
        registry.register(Box::new(backlog.clone())).expect("unique metric");
        let retries_waiting = IntGaugeVec::new(
            Opts::new(
                "notify_retries_waiting",
                "Of the backlog, notifications that failed and wait for a retry (not held against the high-water mark).",
            ),
            &["backend"],
        )
        .expect("valid metric");
        registry.register(Box::new(retries_waiting.clone())).expect("unique metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("notify_delivery_latency_seconds", "Duration of successful delivery attempts.")
                .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["channel"],
        )
        .expect("valid metric");
        registry.register(Box::new(latency.clone())).expect("unique metric");
        for c in Channel::ALL {
            for m in [&enqueued, &delivered, &failed, &retried, &dead_lettered, &deferred, &expired] {
                m.with_label_values(&[c.as_str()]);
            }
            latency.with_label_values(&[c.as_str()]);
        }
        Self { registry, enqueued, delivered, failed, retried, dead_lettered, deferred, expired, backlog, retries_waiting, latency }
    }

    pub fn set_backlog(&self, backend: Backend, n: u64, retries: u64) {
        self.backlog.with_label_values(&[backend.as_str()]).set(n as i64);
        self.retries_waiting.with_label_values(&[backend.as_str()]).set(retries as i64);
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_in_text_format() {
        let m = Metrics::new();
        m.delivered.with_label_values(&["email"]).inc_by(3);
        m.set_backlog(Backend::Embedded, 12, 3);
        m.latency.with_label_values(&["noop"]).observe(0.002);
        let text = m.render();
        assert!(text.contains("notify_delivered_total{channel=\"email\"} 3"), "{text}");
        assert!(text.contains("notify_backlog{backend=\"embedded\"} 12"));
        assert!(text.contains("notify_retries_waiting{backend=\"embedded\"} 3"));
        assert!(text.contains("notify_delivery_latency_seconds_bucket{channel=\"noop\",le=\"0.0025\"} 1"));
        for name in
            ["notify_enqueued_total", "notify_failed_attempts_total", "notify_retried_total", "notify_dead_lettered_total", "notify_expired_total"]
        {
            assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
        }
    }
}
