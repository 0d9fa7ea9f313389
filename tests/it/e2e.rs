//! End to end, as a user meets binlake: the e-commerce workload (`binlake generate` on
//! sql/online_store.sql) runs against a private MariaDB with DDL in the middle while binlake
//! captures it through Kafka (the mock cluster, or KAFKA_BOOTSTRAP_SERVERS) into Azurite; then
//! silver equals MariaDB table by table over every column, history holds every version and
//! bronze every change exactly once. Once with `binlake run`, once with `source` and `sink`
//! SIGKILLed ten times at random moments. Durations: BINLAKE_E2E_SECS (default 120 s of
//! workload per test).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::binlake;
use crate::support::lake::{lake_query, source_rows};
use crate::support::mariadb::MariaDb;

const TABLES: [&str; 7] = [
    "Customers",
    "Sellers",
    "Products",
    "Reasons",
    "Orders",
    "OrderItems",
    "Payments",
];

fn workload_secs() -> u64 {
    std::env::var("BINLAKE_E2E_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn write_config(
    dir: &Path,
    db: &MariaDb,
    bootstrap: &str,
    prefix: &str,
    container: &str,
) -> std::path::PathBuf {
    let config = format!(
        r#"
[source]
url = "mysql://root@127.0.0.1:{port}"
server_id = 4701
snapshot = "never"
checkpoint = "state"
include = ["online_store.*"]
heartbeat_secs = 1
read_timeout_secs = 5

[transport]
kind = "kafka"
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
group_id = "{prefix}-sink"
partitions = 2

[transport.librdkafka]
"group.instance.id" = "{prefix}-sink-1"

[lake]
url = "az://{container}/lake"
max_rows = 5000
max_latency_ms = 500
optimize_every_commits = 20
vacuum_every_commits = 0

[lake.storage]
use_emulator = "true"

[gold]
models = "{models}"
refresh = "1h"
"#,
        port = db.port,
        models = repo("sql/gold").display()
    );
    let path = dir.join("ecommerce.toml");
    std::fs::write(&path, crate::support::kafka::for_the_broker(&config)).unwrap();
    path
}

/// Runs the workload: half of it, two ALTER TABLEs, the other half, then writes to the new
/// columns.
fn run_workload(db: &MariaDb, config: &Path, secs: u64) {
    let generate = |secs: u64| {
        let (code, stderr) = crate::support::binlake(
            &["generate", "--rate", "300", "--duration", &secs.to_string()],
            config,
        );
        assert_eq!(code, Some(0), "generate: {stderr}");
    };
    generate(secs / 2);
    db.sql(
        "ALTER TABLE online_store.Customers ADD COLUMN LoyaltyTier VARCHAR(10) NULL; \
         ALTER TABLE online_store.Orders ADD COLUMN Coupon VARCHAR(12) NULL;",
    );
    generate(secs - secs / 2);
    db.sql(
        "UPDATE online_store.Customers SET LoyaltyTier = 'gold' WHERE CustomerID % 5 = 0; \
         UPDATE online_store.Orders SET Coupon = CONCAT('C', OrderID) WHERE OrderID % 7 = 0;",
    );
}

/// Each table's columns with how both sides print them alike.
fn columns(db: &MariaDb, table: &str) -> Vec<(String, String)> {
    db.sql(&format!(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = 'online_store' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ))
    .lines()
    .map(|l| {
        let (c, t) = l.split_once('\t').unwrap();
        (c.to_string(), t.to_string())
    })
    .collect()
}

fn mariadb_select(table: &str, cols: &[(String, String)]) -> String {
    let list: Vec<String> = cols
        .iter()
        .map(|(c, t)| match t.as_str() {
            "datetime" => format!("DATE_FORMAT(`{c}`, '%Y-%m-%d %H:%i:%s.%f')"),
            "timestamp" => format!(
                "DATE_FORMAT(CONVERT_TZ(`{c}`, @@session.time_zone, '+00:00'), '%Y-%m-%d %H:%i:%s.%f')"
            ),
            _ => format!("`{c}`"),
        })
        .collect();
    format!(
        "SELECT {} FROM online_store.`{table}` ORDER BY 1",
        list.join(", ")
    )
}

fn lake_select(cols: &[(String, String)]) -> String {
    let list: Vec<String> = cols
        .iter()
        .map(|(c, t)| match t.as_str() {
            "datetime" | "timestamp" => format!("to_char(\"{c}\", '%Y-%m-%d %H:%M:%S.%6f')"),
            _ => format!("\"{c}\""),
        })
        .collect();
    format!("SELECT {} FROM t ORDER BY 1", list.join(", "))
}

/// Row changes per table in the server's binlogs, read back with `binlake replay`.
fn binlog_changes(db: &MariaDb) -> BTreeMap<String, (usize, usize)> {
    let out = crate::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .arg("replay")
            .args(db.binlogs()),
    );
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["source"]["db"] != "online_store" {
            continue;
        }
        let e = counts
            .entry(v["source"]["table"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        if v["op"] != "d" {
            e.1 += 1;
        }
    }
    counts
}

/// Silver equals MariaDB over every column; history has every version; bronze every change once.
fn assert_lake_equals_source(db: &MariaDb, container: &str) {
    let changes = binlog_changes(db);
    let options = [("use_emulator", "true")];
    for table in TABLES {
        let url = |layer: &str| format!("az://{container}/lake/{layer}/online_store/{table}");
        let cols = columns(db, table);
        let expected = source_rows(db, &mariadb_select(table, &cols));
        let silver = lake_query(&url("silver"), &options, &lake_select(&cols));
        let (all, versions) = changes.get(table).copied().unwrap_or_default();
        let bronze = lake_query(
            &url("bronze"),
            &options,
            "SELECT count(*), count(DISTINCT position) FROM t",
        );
        if silver != expected {
            let only_source: Vec<_> = expected
                .iter()
                .filter(|r| !silver.contains(r))
                .take(5)
                .collect();
            let only_silver: Vec<_> = silver
                .iter()
                .filter(|r| !expected.contains(r))
                .take(5)
                .collect();
            panic!(
                "{table}: silver ({} rows) differs from the source ({} rows); only in the source: \
                 {only_source:?}; only in silver: {only_silver:?}; bronze count|distinct positions \
                 {bronze:?}, the binlog has {all}",
                silver.len(),
                expected.len()
            );
        }
        assert_eq!(
            bronze,
            [format!("{all}|{all}")],
            "{table}: bronze has every change once"
        );
        let history = lake_query(
            &format!("{}__history", url("silver")),
            &options,
            "SELECT count(*), count(*) FILTER (WHERE __end_at IS NULL) FROM t",
        );
        assert_eq!(
            history,
            [format!("{versions}|{}", expected.len())],
            "{table}: history holds every version, the open ones are silver's rows"
        );
    }
}

#[test]
fn ecommerce_through_kafka_to_azurite_with_ddl_equals_the_source() {
    std::env::var("AZURITE_BLOB_STORAGE_URL")
        .expect("AZURITE_BLOB_STORAGE_URL: run the suite with scripts/test.sh");
    let db = MariaDb::start();
    db.sql_file(&repo("sql/online_store.sql"));
    let b = crate::support::kafka::broker();
    let prefix = crate::support::unique_prefix("e2e");
    let container = crate::support::unique_prefix("e2e");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, &b.bootstrap, &prefix, &container);
    let mut run = crate::support::spawn_binlake("run", &config, std::process::Stdio::null());
    run_workload(&db, &config, workload_secs());
    // SIGTERM: the running pipeline commits what it has and exits 0.
    let pid = run.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = run.wait().unwrap();
    assert!(status.success(), "binlake run after SIGTERM: {status}");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_lake_equals_source(&db, &container);

    // The gold models over the same lake, each compared value by value with the same
    // question asked of MariaDB over the source tables.
    let (code, stderr) = binlake(&["gold", "refresh"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let options = [("use_emulator", "true")];
    let gold = |model: &str, sql: &str| {
        lake_query(
            &format!("az://{container}/lake/gold/{model}"),
            &options,
            sql,
        )
    };
    let ts = "%Y-%m-%d %H:%M:%S.%3f";
    let my_ts = "%Y-%m-%d %H:%i:%s.%f";
    assert_eq!(
        gold("daily_revenue_by_category", "SELECT day, category, revenue, orders FROM t ORDER BY day, category"),
        source_rows(&db, "SELECT DATE(o.OrderDate), p.Category, SUM(i.Quantity * i.UnitPrice), COUNT(DISTINCT o.OrderID) \
            FROM online_store.Orders o JOIN online_store.OrderItems i ON i.OrderID = o.OrderID \
            JOIN online_store.Products p ON p.ProductID = i.ProductID \
            WHERE o.Status IN ('paid', 'shipped', 'delivered') GROUP BY 1, 2 ORDER BY 1, 2")
    );
    assert_eq!(
        gold("customer_lifetime_value", &format!("SELECT customer_id, name, country, orders, lifetime_value, \
            COALESCE(to_char(first_order, '{ts}'), 'NULL'), COALESCE(to_char(last_order, '{ts}'), 'NULL') FROM t ORDER BY customer_id")),
        source_rows(&db, &format!("SELECT c.CustomerID, c.Name, c.Country, COUNT(o.OrderID), \
            IFNULL(SUM(CASE WHEN o.Status IN ('paid', 'shipped', 'delivered') THEN o.Total END), 0), \
            IFNULL(LEFT(DATE_FORMAT(MIN(o.OrderDate), '{my_ts}'), 23), 'NULL'), IFNULL(LEFT(DATE_FORMAT(MAX(o.OrderDate), '{my_ts}'), 23), 'NULL') \
            FROM online_store.Customers c LEFT JOIN online_store.Orders o ON o.CustomerID = c.CustomerID \
            GROUP BY c.CustomerID, c.Name, c.Country ORDER BY c.CustomerID"))
    );
    // Reached stages follow the workload's state machine: placed -> paid -> shipped ->
    // delivered -> refunded; placed or paid -> cancelled. A paid order has a captured payment.
    assert_eq!(
        gold("order_status_funnel", "SELECT status, orders_reached, orders_now FROM t ORDER BY status"),
        source_rows(&db, "SELECT s.status, \
            (SELECT COUNT(*) FROM online_store.Orders o WHERE CASE s.status \
               WHEN 'placed' THEN TRUE \
               WHEN 'paid' THEN EXISTS (SELECT 1 FROM online_store.Payments p WHERE p.OrderID = o.OrderID AND p.Status = 'captured') \
               WHEN 'shipped' THEN o.Status IN ('shipped', 'delivered', 'refunded') \
               WHEN 'delivered' THEN o.Status IN ('delivered', 'refunded') \
               ELSE o.Status = s.status END), \
            (SELECT COUNT(*) FROM online_store.Orders o WHERE o.Status = s.status) \
            FROM (SELECT 'placed' AS status UNION ALL SELECT 'paid' UNION ALL SELECT 'shipped' UNION ALL \
                  SELECT 'delivered' UNION ALL SELECT 'cancelled' UNION ALL SELECT 'refunded') s \
            WHERE EXISTS (SELECT 1 FROM online_store.Orders) ORDER BY s.status")
            .into_iter()
            .filter(|r| r.split('|').nth(1).is_none_or(|n| n != "0"))
            .collect::<Vec<_>>()
    );
    let customers = source_rows(&db, "SELECT CustomerID, Name, Email, Country, IFNULL(City, 'NULL') FROM online_store.Customers ORDER BY CustomerID");
    assert_eq!(
        gold(
            "dim_customer",
            "SELECT customer_id, name, email, country, city FROM t ORDER BY customer_id"
        ),
        customers
    );
    assert_eq!(
        gold("dim_customer_history", "SELECT customer_id, name, email, country, city FROM t WHERE is_current ORDER BY customer_id"),
        customers
    );
    // One current version per customer; deleted customers have only closed ones.
    assert_eq!(
        gold(
            "dim_customer_history",
            "SELECT count(DISTINCT customer_id) FILTER (WHERE is_current), count(*) FILTER (WHERE is_current) FROM t"
        ),
        [format!("{n}|{n}", n = customers.len())]
    );
}

#[test]
fn ecommerce_with_source_and_sink_killed_ten_times_equals_the_source() {
    std::env::var("AZURITE_BLOB_STORAGE_URL")
        .expect("AZURITE_BLOB_STORAGE_URL: run the suite with scripts/test.sh");
    let db = MariaDb::start();
    db.sql_file(&repo("sql/online_store.sql"));
    let b = crate::support::kafka::broker();
    let prefix = crate::support::unique_prefix("kill");
    let container = crate::support::unique_prefix("kill");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, &b.bootstrap, &prefix, &container);
    let spawn = |command: &str| {
        crate::support::spawn_binlake(command, &config, crate::support::e2e_log(command))
    };
    let secs = workload_secs();
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| run_workload(&db, &config, secs));
        let mut source = spawn("source");
        let mut sink = spawn("sink");
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let gap = Duration::from_millis(secs * 1000 / 11);
        for _ in 0..10 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            std::thread::sleep(
                gap / 2 + Duration::from_millis(rng % (gap.as_millis() as u64).max(1)),
            );
            if rng % 2 == 0 {
                crate::support::restart(&mut source, || spawn("source"));
            } else {
                crate::support::restart(&mut sink, || spawn("sink"));
            }
        }
        handle.join().unwrap();
        source.kill().unwrap();
        sink.kill().unwrap();
    });
    crate::support::catch_up(&config);
    assert_lake_equals_source(&db, &container);
}

/// Three `binlake sink` processes in one consumer group share the tables (each topic has several
/// partitions, so one table is often written from two sinks at once) while the workload runs;
/// one of them, at random, is SIGKILLed and started again four times. The lake equals the
/// source, bronze holds every change once, and the commits show two sink processes writing
/// one table. The last catch-up, over the ALTERs of the workload with the partitions
/// interleaved, is bounded at 300 s (it hung before changes were put in schema order, see
/// `lake::schema_runs`).
#[test]
fn ecommerce_with_three_sinks_in_one_group_one_killed_again_and_again_equals_the_source() {
    std::env::var("AZURITE_BLOB_STORAGE_URL")
        .expect("AZURITE_BLOB_STORAGE_URL: run the suite with scripts/test.sh");
    let db = MariaDb::start();
    db.sql_file(&repo("sql/online_store.sql"));
    let b = crate::support::kafka::broker();
    let prefix = crate::support::unique_prefix("group");
    let container = crate::support::unique_prefix("group");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, &b.bootstrap, &prefix, &container);
    // Dynamic members (no static instance id), and a killed one is given up after 6 s (the
    // least a broker allows by default): until then its partitions wait.
    let sink_config = |n: usize| {
        let path = dir.path().join(format!("sink-{n}.toml"));
        let text = std::fs::read_to_string(&config).unwrap().replace(
            &format!("\"group.instance.id\" = \"{prefix}-sink-1\""),
            "\"session.timeout.ms\" = \"6000\"",
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let configs = [sink_config(1), sink_config(2), sink_config(3)];
    let spawn = |command: &str, config: &Path| {
        let name = config.file_stem().unwrap().to_string_lossy();
        crate::support::spawn_binlake(
            command,
            config,
            crate::support::e2e_log(&format!("{command}-{name}")),
        )
    };
    let secs = workload_secs() / 2;
    // The tables' topics exist before the group forms (the schema's own rows are in the
    // binlog): a topic appearing under the members' pattern subscription makes them all join
    // again, and librdkafka's mock cluster aborts its process on a second JoinGroup from a
    // member whose first is still pending (rdkafka_mock_cgrp.c, `!member->resp`).
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| run_workload(&db, &config, secs));
        let _source = spawn("source", &config);
        let mut sinks = vec![spawn("sink", &configs[0]), spawn("sink", &configs[1])];
        let mut rng = binlake::workload::Rng(0x5EED_0016);
        // Kills further apart than the session timeout, so the group settles in between and
        // the members apply (a group that rebalances all the time applies nothing).
        let gap = Duration::from_millis(secs * 1000 / 6);
        for round in 0..5 {
            std::thread::sleep(
                gap / 2 + Duration::from_millis(rng.below_u64(gap.as_millis() as u64)),
            );
            if round == 0 {
                // A third member joins: the group rebalances under load.
                sinks.push(spawn("sink", &configs[2]));
                continue;
            }
            let victim = rng.below(3);
            crate::support::restart(&mut sinks[victim], || spawn("sink", &configs[victim]));
        }
        handle.join().unwrap();
    });
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // Before the last catch-up: the sink processes that committed to each table while the
    // group churned. Some table was written by two of them (its partitions split between
    // members, or handed over at a rebalance).
    let options = [("use_emulator", "true")];
    let writers: Vec<Vec<String>> = TABLES
        .iter()
        .map(|table| {
            let mut writers = crate::support::lake::commit_writers(
                &format!("az://{container}/lake/bronze/online_store/{table}"),
                &options,
            );
            writers.sort();
            writers.dedup();
            writers
        })
        .collect();
    assert!(
        writers.iter().any(|w| w.len() >= 2),
        "no table was written by two sinks: {writers:?}"
    );
    // One member catches up on what is left (bounded: a hang fails the test; the sink logs
    // the partitions it has not reached every 10 s, which tells a hang from slowness).
    let started = std::time::Instant::now();
    let (code, stderr) = crate::support::binlake_within(
        &["sink", "--exit-when-caught-up"],
        &configs[0],
        Duration::from_secs(300),
    );
    assert_eq!(code, Some(0), "{stderr}");
    eprintln!("the last catch-up took {:?}", started.elapsed());
    assert_lake_equals_source(&db, &container);
}
