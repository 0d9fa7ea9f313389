//! The reference pipelines on binlake: each schema from sql/, its `binlake generate` scenario
//! against a private MariaDB, `binlake run` (embedded) into a local lake with its gold models,
//! and the gold tables compared with the same question asked of MariaDB in SQL.

use std::path::Path;

use crate::support::binlake;
use crate::support::lake::{lake_query, source_rows, table_url};
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;

/// Loads `schema`, runs `scenario` for a few seconds, then `binlake run --exit-when-caught-up`
/// with the scenario's gold models, then `binlake gold refresh`. Returns the lake directory.
fn pipeline(
    db: &MariaDb,
    dir: &Path,
    schema: &str,
    scenario: &str,
    db_name: &str,
) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    db.sql_file(&repo.join(schema));
    let path = Scenario::source(db, 4801)
        .snapshot("initial")
        .include(&format!("{db_name}.*"))
        .transport("kind = \"embedded\"")
        .lake("url = \"lake\"\nmax_latency_ms = 300")
        .section(&format!(
            "[gold]\nmodels = \"{}\"\nrefresh = \"on_commit\"",
            repo.join("sql/gold").join(scenario).display()
        ))
        .write(dir, "pipeline.toml");
    crate::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args([
                "generate",
                "--scenario",
                scenario,
                "--rate",
                "300",
                "--duration",
                "4",
                "--config",
            ])
            .arg(&path),
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &path);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = binlake(&["gold", "refresh"], &path);
    assert_eq!(code, Some(0), "{stderr}");
    dir.join("lake")
}

fn gold(lake: &Path, model: &str, sql: &str) -> Vec<String> {
    lake_query(&table_url(lake, &format!("gold/{model}")), &[], sql)
}

#[test]
fn bookings_fact_has_a_row_per_seat_joined_to_timely_payments() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = pipeline(&db, dir.path(), "sql/bookings.sql", "bookings", "bookings");
    let ours = gold(
        &lake,
        "bookings_fact",
        "SELECT order_id, to_char(booking_time, '%Y-%m-%d %H:%M:%S.%3f'), customer_id, customer_name, customer_email, \
         event_id, event_name, event_location, seat_number, seat_price, event_category, booking_day_of_week, booking_hour, \
         COALESCE(CAST(payment_id AS VARCHAR), 'NULL'), COALESCE(to_char(payment_time, '%Y-%m-%d %H:%M:%S.%3f'), 'NULL'), \
         COALESCE(CAST(amount AS VARCHAR), 'NULL'), COALESCE(payment_method, 'NULL'), COALESCE(payment_type, 'NULL') \
         FROM t ORDER BY order_id, seat_number, seat_price",
    );
    let theirs = source_rows(
        &db,
        "SELECT b.order_id, LEFT(DATE_FORMAT(b.booking_time, '%Y-%m-%d %H:%i:%s.%f'), 23), b.customer_id, b.customer_name, \
         b.customer_email, b.event_id, b.event_name, b.event_location, j.seat_number, j.price, \
         CASE WHEN b.event_name LIKE '%Concert%' THEN 'Music' WHEN b.event_name LIKE '%Match%' THEN 'Sports' \
              WHEN b.event_name LIKE '%Play%' THEN 'Theatre' ELSE 'Other' END, DAYNAME(b.booking_time), HOUR(b.booking_time), \
         IFNULL(p.payment_id, 'NULL'), IFNULL(LEFT(DATE_FORMAT(p.payment_time, '%Y-%m-%d %H:%i:%s.%f'), 23), 'NULL'), \
         IFNULL(p.amount, 'NULL'), IFNULL(p.payment_method, 'NULL'), \
         CASE WHEN p.payment_method IN ('credit_card', 'debit_card') THEN 'card' WHEN p.payment_method IN ('paypal', 'apple_pay') THEN 'wallet' \
              WHEN p.payment_method IS NULL THEN 'NULL' ELSE 'other' END \
         FROM bookings.bookings b \
         JOIN JSON_TABLE(b.seats, '$[*]' COLUMNS (seat_number VARCHAR(10) PATH '$.seat_number', price DECIMAL(10,2) PATH '$.price')) j \
         LEFT JOIN bookings.payments p ON p.order_id = b.order_id \
           AND p.payment_time BETWEEN b.booking_time AND b.booking_time + INTERVAL 2 MINUTE \
         ORDER BY b.order_id, j.seat_number, j.price",
    );
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours, theirs);
    // Late payments exist, and they are not joined.
    let late: usize = source_rows(
        &db,
        "SELECT COUNT(*) FROM bookings.bookings b JOIN bookings.payments p ON p.order_id = b.order_id \
         AND p.payment_time > b.booking_time + INTERVAL 2 MINUTE",
    )[0]
    .parse()
    .unwrap();
    assert!(late > 0, "the workload makes late payments");
    // Exactly the fact table's columns, as another engine reads them.
    let out = std::process::Command::new(crate::support::lake::python())
        .args([
            "-c",
            "import os, sys; from deltalake import DeltaTable; print(','.join(f.name for f in DeltaTable(sys.argv[1]).schema().fields)); sys.stdout.flush(); os._exit(0)",
        ])
        .arg(lake.join("gold/bookings_fact"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "order_id,booking_time,customer_id,customer_name,customer_email,event_id,event_name,event_location,seat_number,seat_price,event_category,booking_day_of_week,booking_hour,payment_id,payment_time,amount,payment_method,payment_type"
    );
}

#[test]
fn purchases_daily_totals_categories_and_invalid_rows() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = pipeline(
        &db,
        dir.path(),
        "sql/purchases.sql",
        "purchases",
        "purchases",
    );
    let valid = "quantity >= 0 AND total = quantity * unit_price - discount";
    let days = source_rows(
        &db,
        &format!("SELECT DATE(ts), SUM(total), COUNT(*) FROM purchases.purchase_events WHERE {valid} GROUP BY DATE(ts) ORDER BY 1"),
    );
    let mut running = 0i64;
    let expected: Vec<String> = days
        .iter()
        .map(|d| {
            let f: Vec<&str> = d.split('|').collect();
            running += f[1].replace('.', "").parse::<i64>().unwrap();
            format!(
                "{}|{}|{}.{:02}|{}",
                f[0],
                f[1],
                running / 100,
                running % 100,
                f[2]
            )
        })
        .collect();
    assert_eq!(
        gold(
            &lake,
            "daily_totals",
            "SELECT day, total, running_total, transactions FROM t ORDER BY day"
        ),
        expected
    );
    assert_eq!(
        gold(&lake, "category_breakdown", "SELECT category, segment, transactions, units, revenue, round(average_ticket, 2) FROM t ORDER BY category, segment"),
        source_rows(
            &db,
            &format!("SELECT category, segment, COUNT(*), SUM(quantity), SUM(total), ROUND(AVG(total), 2) FROM purchases.purchase_events WHERE {valid} GROUP BY category, segment ORDER BY 1, 2")
        )
    );
    let invalid = gold(
        &lake,
        "invalid_purchases",
        "SELECT event_id, reason FROM t ORDER BY event_id",
    );
    assert_eq!(
        invalid,
        source_rows(
            &db,
            "SELECT event_id, CASE WHEN quantity < 0 THEN 'negative quantity' ELSE 'total is not quantity * unit_price - discount' END \
             FROM purchases.purchase_events WHERE quantity < 0 OR total <> quantity * unit_price - discount ORDER BY event_id"
        )
    );
    assert!(
        invalid.iter().any(|r| r.ends_with("negative quantity")),
        "{invalid:?}"
    );
    assert!(
        invalid.iter().any(|r| r.ends_with("discount")),
        "{invalid:?}"
    );
}

#[test]
fn orders_stream_revenue_per_minute_and_fraud_alerts() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = pipeline(
        &db,
        dir.path(),
        "sql/orders_stream.sql",
        "orders_stream",
        "orders_stream",
    );
    assert_eq!(
        gold(&lake, "revenue_per_minute", "SELECT to_char(minute, '%Y-%m-%d %H:%M'), revenue, orders FROM t ORDER BY minute"),
        source_rows(
            &db,
            "SELECT DATE_FORMAT(created_at, '%Y-%m-%d %H:%i'), SUM(amount), COUNT(*) FROM orders_stream.orders \
             WHERE status NOT IN ('cancelled', 'refunded') GROUP BY 1 ORDER BY 1"
        )
    );
    let alerts = gold(
        &lake,
        "fraud_alerts",
        "SELECT order_id, customer_id, amount, status, to_char(created_at, '%Y-%m-%d %H:%M:%S.%3f'), score FROM t ORDER BY order_id",
    );
    assert_eq!(
        alerts,
        source_rows(
            &db,
            "SELECT order_id, customer_id, amount, status, LEFT(DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f'), 23), score \
             FROM (SELECT order_id, customer_id, amount, status, created_at, \
             CASE WHEN amount > 5000 THEN 4 WHEN amount > 3000 THEN 3 WHEN amount > 2000 THEN 2 ELSE 0 END \
             + CASE WHEN status IN ('cancelled', 'refunded') THEN 1 ELSE 0 END AS score FROM orders_stream.orders) s \
             WHERE score >= 3 ORDER BY order_id"
        )
    );
    assert!(!alerts.is_empty());
}

#[test]
fn ticket_sales_hourly_users_tickets_and_waits() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = pipeline(
        &db,
        dir.path(),
        "sql/ticket_sales.sql",
        "ticket_sales",
        "ticket_sales",
    );
    let ours = gold(
        &lake,
        "hourly_sales",
        "SELECT to_char(hour, '%Y-%m-%d %H'), total_users, tickets_sold, COALESCE(CAST(round(avg_wait_seconds * 1000) AS BIGINT), -1) FROM t ORDER BY hour",
    );
    let theirs = source_rows(
        &db,
        "SELECT DATE_FORMAT(arrived_at, '%Y-%m-%d %H'), COUNT(*), SUM(tickets), \
         IFNULL(ROUND(AVG(TIMESTAMPDIFF(MICROSECOND, arrived_at, served_at)) / 1000), -1) \
         FROM ticket_sales.queue GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(ours, theirs);
    assert!(
        ours.len() > 1,
        "arrivals spread over several hours: {ours:?}"
    );
}

#[test]
fn a_failing_model_is_reported_with_file_and_line_and_replication_goes_on() {
    let db = MariaDb::start();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    db.sql_file(&repo.join("sql/orders_stream.sql"));
    db.sql("INSERT INTO orders_stream.orders (customer_id, amount, status, created_at, updated_at) VALUES (1, 6000, 'paid', NOW(3), NOW(3))");
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(
        repo.join("sql/gold/orders_stream/fraud_alerts.sql"),
        models.join("fraud_alerts.sql"),
    )
    .unwrap();
    std::fs::write(
        models.join("broken.sql"),
        "SELECT order_id\nFROM orders_stream.orders\nWHERE amount >>> 3\n",
    )
    .unwrap();
    std::fs::write(
        models.join("missing.sql"),
        "SELECT o.order_id FROM orders_stream.orders o JOIN orders_stream.nowhere n ON o.order_id = n.order_id\n",
    )
    .unwrap();
    std::fs::write(
        models.join("on_top.sql"),
        "SELECT count(*) AS alerts FROM gold.fraud_alerts\n",
    )
    .unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[source]
url = "mysql://root@127.0.0.1:{port}"
server_id = 4802
snapshot = "initial"
checkpoint = "state"
include = ["orders_stream.*"]
[transport]
kind = "embedded"
[lake]
url = "lake"
max_latency_ms = 200
[gold]
models = "models"
"#,
            port = db.port
        ),
    )
    .unwrap();
    // Replication is not stopped by the failing models.
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // A table that does not exist (yet) is waited for, said once, not failed at every refresh.
    assert_eq!(
        stderr
            .matches("waiting for orders_stream.nowhere: no such table yet")
            .count(),
        1,
        "{stderr}"
    );
    // The failing model is named with its file and the line of its error.
    assert!(
        stderr.contains(&format!("{}:3:", models.join("broken.sql").display())),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
        .args(["gold", "refresh", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("gold/fraud_alerts: 1 rows"), "{stdout}");
    assert!(stdout.contains("gold/on_top: 1 rows"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "gold/broken: FAILED: {}:3:",
            models.join("broken.sql").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "gold/missing: NOT RUN: {}: waiting for orders_stream.nowhere: no such table yet",
            models.join("missing.sql").display()
        )),
        "{stdout}"
    );
    let lake = dir.path().join("lake");
    assert_eq!(gold(&lake, "on_top", "SELECT alerts FROM t"), ["1"]);
    // A cycle between models is an error before anything runs.
    std::fs::write(models.join("a.sql"), "SELECT * FROM gold.b\n").unwrap();
    std::fs::write(models.join("b.sql"), "SELECT * FROM gold.a\n").unwrap();
    let (code, stderr) = binlake(&["gold", "refresh"], &config);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cycle: a -> b -> a"), "{stderr}");
}
