//! The Prometheus endpoint and status page (`[metrics] listen = "127.0.0.1:9187"`): counters
//! and gauges the pipeline updates as it goes, served as Prometheus text on `GET /metrics`, and
//! a server-rendered HTML page on `GET /` (per-table lag and a throughput chart for the last ten
//! minutes, dead letters, the latest rows of each gold model), from a background thread.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::lake::gold::GoldPreview;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Deserialize;

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to serve `GET /metrics` on, e.g. `127.0.0.1:9187`.
    pub listen: String,
}

/// Everything binlake reports.
#[derive(Clone)]
pub struct Metrics {
    pub source_changes: Counter,
    pub records: Counter,
    pub changes_applied: Counter,
    pub dead_letters: Counter,
    pub commits: Counter,
    /// Batches committed at `busy_latency_ms`, before `max_latency_ms`, for being busy.
    pub busy_batches: Counter,
    /// Batches applied again because another sink committed to the table first.
    pub concurrent_commits: Counter,
    pub portions_committed: Counter,
    /// Appends committed again on top of a compaction or vacuum that landed meanwhile.
    pub append_rebases: Counter,
    /// Compactions that landed, in the background or in line.
    pub compactions: Counter,
    /// Background compactions that lost to a concurrent commit (each run again in line).
    pub compactions_lost: Counter,
    pub vacuums: Counter,
    /// Log files past the log retention that vacuums deleted.
    pub expired_log_files: Counter,
    pub errors: Counter,
    pub gold_refreshes: Counter,
    pub gold_failures: Counter,
    pub gold_vacuums: Counter,
    /// Seconds from the source commit of the newest applied change to its apply.
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// Tables whose apply stopped on a change the lake cannot take.
    pub tables_stopped: Gauge,
    pub batch_seconds: Histogram,
    registry: Arc<Mutex<Registry>>,
    board: Arc<Mutex<Board>>,
    /// The progress of a snapshot the source in this process takes while streaming.
    snapshots: crate::mysql::checkpoint::SnapshotBoard,
}

/// Seconds per bucket of the throughput chart, and buckets kept (ten minutes).
const BUCKET_SECS: u64 = 10;
const BUCKETS: usize = 60;

/// What the status page shows beyond the counters.
#[derive(Default)]
struct Board {
    tables: BTreeMap<String, TableBoard>,
    gold: Vec<GoldPreview>,
    /// Stopped tables: (table, message).
    stopped: Vec<(String, String)>,
}

#[derive(Default)]
struct TableBoard {
    lag_seconds: f64,
    changes: u64,
    /// (bucket number since the epoch, changes applied in it), oldest first.
    buckets: VecDeque<(u64, u64)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
            busy_batches: Counter::default(),
            concurrent_commits: Counter::default(),
            portions_committed: Counter::default(),
            append_rebases: Counter::default(),
            compactions: Counter::default(),
            compactions_lost: Counter::default(),
            vacuums: Counter::default(),
            expired_log_files: Counter::default(),
            errors: Counter::default(),
            gold_refreshes: Counter::default(),
            gold_failures: Counter::default(),
            gold_vacuums: Counter::default(),
            lag_seconds: Gauge::default(),
            tables_stopped: Gauge::default(),
            batch_seconds: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
            registry: Arc::new(Mutex::new(Registry::with_prefix("binlake"))),
            board: Arc::new(Mutex::new(Board::default())),
            snapshots: Default::default(),
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
                "Row changes this process took into the lake (not those it held already)",
                m.changes_applied.clone(),
            );
            r.register(
                "dead_letters",
                "Poison records written to dead_letters",
                m.dead_letters.clone(),
            );
            r.register("commits", "Delta commits", m.commits.clone());
            r.register(
                "busy_batches",
                "Batches committed at busy_latency_ms, before max_latency_ms, for holding busy_changes_per_table records a table",
                m.busy_batches.clone(),
            );
            r.register(
                "concurrent_commits",
                "Table applies done again because another sink committed to the table first",
                m.concurrent_commits.clone(),
            );
            r.register(
                "portions_committed",
                "Leading portions of a batch committed on their own after the whole batch kept losing to another sink's commits",
                m.portions_committed.clone(),
            );
            r.register(
                "append_rebases",
                "Appends committed again on top of a compaction or vacuum, or on bronze another sink's append of other partitions, that landed meanwhile",
                m.append_rebases.clone(),
            );
            r.register(
                "compactions",
                "Table compactions that landed, in the background or in line",
                m.compactions.clone(),
            );
            r.register(
                "compactions_lost",
                "Background compactions that lost to a concurrent commit and ran again in line",
                m.compactions_lost.clone(),
            );
            r.register("vacuums", "Table vacuums run", m.vacuums.clone());
            r.register(
                "expired_log_files",
                "Log files past the table's log retention that vacuums deleted",
                m.expired_log_files.clone(),
            );
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
                "gold_vacuums",
                "Vacuums of gold models' tables",
                m.gold_vacuums.clone(),
            );
            r.register(
                "lag_seconds",
                "Seconds from the source commit of the newest applied change to its apply",
                m.lag_seconds.clone(),
            );
            r.register(
                "tables_stopped",
                "Tables whose apply stopped on a change the lake cannot take (see the status page or binlake status)",
                m.tables_stopped.clone(),
            );
            r.register(
                "batch_seconds",
                "Seconds to apply one batch to the lake",
                m.batch_seconds.clone(),
            );
        }
        m
    }

    /// `changes` applied to `table` (`db.table`) just now; `newest_ts_ms` is the source commit
    /// time of the newest of them.
    pub fn record_table(&self, table: &str, changes: u64, newest_ts_ms: i64) {
        let now_ms = crate::event::now_ms();
        let bucket = now_ms / 1000 / BUCKET_SECS;
        let mut board = self.board.lock().expect("lock");
        let t = board.tables.entry(table.to_string()).or_default();
        t.changes += changes;
        if newest_ts_ms > 0 {
            t.lag_seconds = (now_ms as i64 - newest_ts_ms).max(0) as f64 / 1000.0;
        }
        match t.buckets.back_mut() {
            Some((b, n)) if *b == bucket => *n += changes,
            _ => t.buckets.push_back((bucket, changes)),
        }
        while t
            .buckets
            .front()
            .is_some_and(|(b, _)| *b + BUCKETS as u64 <= bucket)
        {
            t.buckets.pop_front();
        }
    }

    /// Where the source in this process shows the progress of a snapshot taken while
    /// streaming (tables added later, `binlake snapshot`).
    pub fn snapshot_board(&self) -> crate::mysql::checkpoint::SnapshotBoard {
        Arc::clone(&self.snapshots)
    }

    /// The tables stopped so far, with why.
    pub fn set_stopped(&self, stopped: &[crate::lake::stopped::StoppedTable]) {
        self.tables_stopped.set(stopped.len() as i64);
        self.board.lock().expect("lock").stopped = stopped
            .iter()
            .map(|s| (s.table.clone(), s.message()))
            .collect();
    }

    /// The gold models' latest rows.
    pub fn set_gold(&self, previews: &[GoldPreview]) {
        self.board.lock().expect("lock").gold = previews.to_vec();
    }

    /// The status page.
    pub fn render_html(&self) -> String {
        let board = self.board.lock().expect("lock");
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
             <title>binlake status</title><style>\
             body{{font-family:sans-serif;margin:24px;color:#222}} h1{{margin:0 0 4px}} .sum{{color:#555}}\
             table{{border-collapse:collapse;margin:8px 0 20px}} td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}}\
             th{{background:#f0f3f7}} .num{{text-align:right}} .err{{color:#b00020}}\
             </style></head><body><h1>binlake</h1><p class=\"sum\">{} records consumed · {} changes applied · {} commits · \
             {} dead letters · {} errors · lag {:.1} s</p>",
            self.records.get(),
            self.changes_applied.get(),
            self.commits.get(),
            self.dead_letters.get(),
            self.errors.get(),
            self.lag_seconds.get()
        );
        if !board.stopped.is_empty() {
            h.push_str("<h2 class=\"err\">Stopped tables</h2><ul>");
            for (table, message) in &board.stopped {
                let _ = write!(
                    h,
                    "<li class=\"err\"><b>{}</b>: {}</li>",
                    escape(table),
                    escape(message)
                );
            }
            h.push_str("</ul>");
        }
        let snapshots = self.snapshots.lock().expect("lock").clone();
        if !snapshots.is_empty() {
            h.push_str("<h2>Snapshot</h2><table><tr><th>table</th><th>rows emitted</th><th>rows</th><th>state</th></tr>");
            for t in &snapshots {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&t.table.to_string()),
                    t.rows,
                    escape(t.filter.as_deref().unwrap_or("all")),
                    if t.done { "done" } else { "reading" }
                );
            }
            h.push_str("</table>");
        }
        h.push_str("<h2>Tables</h2><table><tr><th>table</th><th>lag (s)</th><th>changes applied</th><th>throughput, last 10 minutes (changes per 10 s)</th></tr>");
        let now_bucket = crate::event::now_ms() / 1000 / BUCKET_SECS;
        for (name, t) in &board.tables {
            let counts: Vec<u64> = (0..BUCKETS as u64)
                .map(|i| {
                    let b = now_bucket + 1 + i - BUCKETS as u64;
                    t.buckets
                        .iter()
                        .find(|(x, _)| *x == b)
                        .map_or(0, |(_, n)| *n)
                })
                .collect();
            let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
            let points: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{},{:.1}", i * 5, 38.0 - (*n as f64 / max) * 36.0))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td>\
                 <svg width=\"300\" height=\"40\" role=\"img\" aria-label=\"throughput of {}\">\
                 <rect width=\"300\" height=\"40\" fill=\"#f7f9fc\"/>\
                 <polyline fill=\"none\" stroke=\"#2a6fdb\" stroke-width=\"2\" points=\"{}\"/></svg>\
                 <span class=\"sum\"> peak {}</span></td></tr>",
                escape(name),
                t.lag_seconds,
                t.changes,
                escape(name),
                points.join(" "),
                max as u64
            );
        }
        h.push_str("</table>");
        let _ = write!(
            h,
            "<h2>Dead letters</h2><p>{} poison records in <code>dead_letters</code> (reason, topic, partition, offset).</p>",
            self.dead_letters.get()
        );
        h.push_str("<h2>Gold</h2>");
        if board.gold.is_empty() {
            h.push_str("<p class=\"sum\">no gold refresh yet</p>");
        }
        for g in &board.gold {
            let _ = write!(h, "<h3>gold/{}</h3>", escape(&g.name));
            if !g.waiting_for.is_empty() {
                let _ = write!(
                    h,
                    "<p class=\"sum\">waiting for {}: no change of it has been applied yet</p>",
                    escape(&g.waiting_for.join(", "))
                );
                continue;
            }
            if let Some(e) = &g.error {
                let _ = write!(h, "<p class=\"err\">{}</p>", escape(e));
                continue;
            }
            h.push_str("<table><tr>");
            for c in &g.columns {
                let _ = write!(h, "<th>{}</th>", escape(c));
            }
            h.push_str("</tr>");
            for r in &g.rows {
                h.push_str("<tr>");
                for v in r {
                    let _ = write!(h, "<td>{}</td>", escape(v));
                }
                h.push_str("</tr>");
            }
            h.push_str("</table>");
        }
        h.push_str("</body></html>");
        h
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
                    let header = |h: &str| h.parse::<tiny_http::Header>().expect("a valid header");
                    let response = match request.url() {
                        "/metrics" => tiny_http::Response::from_string(metrics.render())
                            .with_header(header("Content-Type: text/plain; version=0.0.4")),
                        "/" => tiny_http::Response::from_string(metrics.render_html())
                            .with_header(header("Content-Type: text/html; charset=utf-8")),
                        _ => tiny_http::Response::from_string("see / and /metrics\n")
                            .with_status_code(404),
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
    fn a_running_snapshot_is_shown_table_by_table() {
        let m = Metrics::new();
        *m.snapshot_board().lock().unwrap() = vec![crate::mysql::checkpoint::TableProgress {
            table: crate::event::TableId::new("shop", "orders"),
            done: false,
            rows: 150_000,
            last_key: None,
            filter: Some("id > 100".into()),
        }];
        let html = m.render_html();
        assert!(
            html.contains("<tr><td>shop.orders</td><td class=\"num\">150000</td><td>id &gt; 100</td><td>reading</td></tr>"),
            "{html}"
        );
    }

    #[test]
    fn stopped_tables_are_counted_and_shown_with_why() {
        let m = Metrics::new();
        m.set_stopped(&[crate::lake::stopped::StoppedTable {
            table: "shop.orders".into(),
            topic: "t.shop.orders".into(),
            reason: "column id: 99999999999 is out of range".into(),
            position: "binlog b.000001:4 row 0".into(),
            since_ms: 0,
        }]);
        assert!(m.render().contains("binlake_tables_stopped 1"));
        let html = m.render_html();
        assert!(
            html.contains("<h2 class=\"err\">Stopped tables</h2>")
                && html.contains("<b>shop.orders</b>: shop.orders: stopped applying: column id: 99999999999 is out of range (change at binlog b.000001:4 row 0)."),
            "{html}"
        );
    }

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
        assert!(body.contains("binlake_tables_stopped 0"), "{body}");
        for maintenance in [
            "compactions",
            "compactions_lost",
            "vacuums",
            "gold_vacuums",
            "portions_committed",
            "busy_batches",
        ] {
            assert!(
                body.contains(&format!("binlake_{maintenance}_total 0")),
                "{body}"
            );
        }

        m.record_table("shop.orders", 120, crate::event::now_ms() as i64 - 2500);
        m.set_gold(&[
            GoldPreview {
                name: "revenue".into(),
                columns: vec!["day".into(), "total".into()],
                rows: vec![vec!["2026-11-22".into(), "<42>".into()]],
                ..GoldPreview::default()
            },
            GoldPreview {
                name: "funnel".into(),
                waiting_for: vec!["shop.orders".into()],
                ..GoldPreview::default()
            },
        ]);
        let html = m.render_html();
        assert!(
            html.contains(
                "<td>shop.orders</td><td class=\"num\">2.5</td><td class=\"num\">120</td>"
            ),
            "{html}"
        );
        assert!(html.contains("<polyline"), "{html}");
        assert!(html.contains("1 dead letters"), "{html}");
        assert!(
            html.contains("<h3>gold/revenue</h3>") && html.contains("<td>&lt;42&gt;</td>"),
            "{html}"
        );
        assert!(
            html.contains("<h3>gold/funnel</h3><p class=\"sum\">waiting for shop.orders: no change of it has been applied yet</p>"),
            "{html}"
        );
    }
}
