//! The Prometheus endpoint (`[metrics] listen = "127.0.0.1:9187"`): counters and gauges the
//! pipeline updates as it goes, served as Prometheus text on `GET /metrics` from a background
//! thread.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Everything binlake reports.
#[derive(Clone)]
pub struct Metrics {
    pub source_changes: Counter,
    pub records: Counter,
    pub changes_applied: Counter,
    pub dead_letters: Counter,
    pub commits: Counter,
    pub errors: Counter,
    pub gold_refreshes: Counter,
    pub gold_failures: Counter,
    /// Seconds from the source commit of the newest applied change to its apply.
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub batch_seconds: Histogram,
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            source_changes: Counter::default(),
            records: Counter::default(),
            changes_applied: Counter::default(),
            dead_letters: Counter::default(),
            commits: Counter::default(),
            errors: Counter::default(),
            gold_refreshes: Counter::default(),
            gold_failures: Counter::default(),
            lag_seconds: Gauge::default(),
            batch_seconds: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
            registry: Arc::new(Mutex::new(Registry::with_prefix("binlake"))),
        };
        {
            let mut r = m.registry.lock().expect("lock");
            r.register(
                "source_changes",
                "Row changes captured from the binlog",
                m.source_changes.clone(),
            );
            r.register("records", "Transport records consumed", m.records.clone());
            r.register(
                "changes_applied",
                "Row changes applied to the lake",
                m.changes_applied.clone(),
            );
            r.register(
                "dead_letters",
                "Poison records written to dead_letters",
                m.dead_letters.clone(),
            );
            r.register("commits", "Delta commits", m.commits.clone());
            r.register("errors", "Errors that stopped a batch", m.errors.clone());
            r.register(
                "gold_refreshes",
                "Gold refreshes run",
                m.gold_refreshes.clone(),
            );
            r.register(
                "gold_failures",
                "Gold models that failed",
                m.gold_failures.clone(),
            );
            r.register(
                "lag_seconds",
                "Seconds from the source commit of the newest applied change to its apply",
                m.lag_seconds.clone(),
            );
            r.register(
                "batch_seconds",
                "Seconds to apply one batch to the lake",
                m.batch_seconds.clone(),
            );
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("lock")).expect("writing to a String");
        out
    }

    /// Serves `GET /metrics` on `listen` from a background thread.
    pub fn serve(&self, listen: &str) -> Result<(), String> {
        let server =
            tiny_http::Server::http(listen).map_err(|e| format!("metrics.listen {listen}: {e}"))?;
        let metrics = self.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    let response = if request.url() == "/metrics" {
                        tiny_http::Response::from_string(metrics.render()).with_header(
                            "Content-Type: text/plain; version=0.0.4"
                                .parse::<tiny_http::Header>()
                                .expect("a valid header"),
                        )
                    } else {
                        tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                    };
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| format!("starting the metrics thread: {e}"))?;
        tracing::info!(listen, "metrics on http://{listen}/metrics");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_serves_prometheus_text() {
        let m = Metrics::new();
        m.changes_applied.inc_by(42);
        m.dead_letters.inc();
        m.lag_seconds.set(1.5);
        m.batch_seconds.observe(0.2);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        m.serve(&format!("127.0.0.1:{port}")).unwrap();
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        conn.read_to_string(&mut body).unwrap();
        assert!(body.contains("binlake_changes_applied_total 42"), "{body}");
        assert!(body.contains("binlake_dead_letters_total 1"), "{body}");
        assert!(body.contains("binlake_lag_seconds 1.5"), "{body}");
        assert!(body.contains("binlake_batch_seconds_count 1"), "{body}");
    }
}
