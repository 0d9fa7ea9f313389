//! The DDL torture workload: every schema change binlake follows (ADD COLUMN with a default,
//! widening and narrowing type changes, a cross-type change, RENAME and CHANGE COLUMN, DROP
//! COLUMN, a primary-key change, a DECIMAL scale lowered (the server rounds), TRUNCATE, RENAME
//! TABLE) interleaved with inserts, updates, deletes and primary-key moves, beside a table with
//! no key at all whose identical rows are inserted, deleted and updated one copy at a time, the
//! pipeline SIGKILLed at pseudo-random moments, under each `schema_changes` policy.

use std::time::Duration;

use crate::support::binlake;
use crate::support::lake::{lake_query, source_rows, table_url};
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;

/// The workload, as statements one after another (each line is one step).
fn workload() -> Vec<String> {
    let mut steps = vec![
        "CREATE TABLE shop.t (id INT PRIMARY KEY, a INT, b VARCHAR(20), c DECIMAL(8,2), d DATE, n BIGINT)".to_string(),
        "CREATE TABLE shop.k (a INT, b VARCHAR(10))".to_string(),
    ];
    // The DML names the columns as the DDL so far left them.
    let dml = |round: u64, b: &str, n: &str| -> Vec<String> {
        let base = round * 100;
        vec![
            format!("INSERT INTO shop.t (id, a, {b}, c, d, {n}) VALUES ({}, {round}, 'r{round}', {round}.25, '2024-01-{:02}', {round}), ({}, 2, 'x', 1.50, '2024-02-01', 9)", base + 1, round % 28 + 1, base + 2),
            format!("UPDATE shop.t SET a = a + 1, c = c + 1 WHERE id % 3 = {}", round % 3),
            format!("DELETE FROM shop.t WHERE id = {}", base + 2),
            format!("UPDATE shop.t SET id = {} WHERE id = {}", base + 50, base + 1),
            format!("INSERT INTO shop.k (a, b) VALUES (1, 'dup'), (1, 'dup'), ({round}, NULL)"),
            "DELETE FROM shop.k WHERE a = 1 LIMIT 1".to_string(),
            "UPDATE shop.k SET b = 'u' WHERE b IS NULL LIMIT 1".to_string(),
        ]
    };
    let ddl = [
        "ALTER TABLE shop.t ADD COLUMN e INT NOT NULL DEFAULT 5",
        "TRUNCATE TABLE shop.t",
        "ALTER TABLE shop.t MODIFY a BIGINT",
        "ALTER TABLE shop.t RENAME COLUMN b TO bb",
        "ALTER TABLE shop.t MODIFY c DECIMAL(12,3)",
        "ALTER TABLE shop.k ADD COLUMN z INT NULL",
        "ALTER TABLE shop.t MODIFY d DATETIME",
        "ALTER TABLE shop.t CHANGE n nn VARCHAR(30)",
        "ALTER TABLE shop.t DROP COLUMN e",
        "ALTER TABLE shop.t DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)",
        "ALTER TABLE shop.t MODIFY a INT",
        "ALTER TABLE shop.t MODIFY c DECIMAL(12,1)",
    ];
    let (mut b, mut n) = ("b", "n");
    for (round, statement) in ddl.iter().enumerate() {
        steps.extend(dml(round as u64 + 1, b, n));
        steps.push(statement.to_string());
        if statement.contains("TO bb") {
            b = "bb";
        }
        if statement.contains("CHANGE n nn") {
            n = "nn";
        }
    }
    steps.extend(dml(20, b, n));
    steps.extend(dml(21, b, n));
    steps
}

/// Runs the workload with `policy`, SIGKILLing `binlake run` at pseudo-random moments, then
/// runs to the end; returns the lake's folder and the last run's (exit code, stderr).
fn torture(db: &MariaDb, policy: &str, dir: &std::path::Path) -> (Option<i32>, String) {
    let config = Scenario::source(db, 4700)
        .include("shop.*")
        .transport("kind = \"embedded\"")
        .lake(&format!(
            "max_latency_ms = 100\nurl = \"lake\"\nschema_changes = \"{policy}\""
        ))
        .write(dir, "run.toml");
    let mut script = String::new();
    for step in workload() {
        script.push_str(&step);
        script.push_str("; SELECT SLEEP(0.03);\n");
    }
    let writer = db.spawn_writer(script);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..6 {
        let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 450));
        run.kill().unwrap(); // SIGKILL
        run.wait().unwrap();
    }
    writer.join().unwrap();
    binlake(&["run", "--exit-when-caught-up"], &config)
}

#[test]
fn every_ddl_under_evolve_with_sigkills_leaves_silver_equal_to_the_server() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop;");
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = torture(&db, "evolve", dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    let rows: u64 = source_rows(&db, "SELECT count(*) FROM shop.t")[0]
        .parse()
        .unwrap();
    assert!(
        rows >= 10,
        "{rows} rows: the rows written after the TRUNCATE went through every rewrite"
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/t"),
            &[],
            "SELECT id, a, bb, c, to_char(d, '%Y-%m-%dT%H:%M:%S'), nn FROM t ORDER BY id, a"
        ),
        source_rows(
            &db,
            "SELECT id, a, bb, c, DATE_FORMAT(d, '%Y-%m-%dT%H:%i:%s'), nn FROM shop.t ORDER BY id, a"
        ),
        "silver equals the server over every column"
    );
    // History: one open version per live row, whatever was rewritten on the way.
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/t__history"),
            &[],
            "SELECT count(*) FROM t WHERE __end_position IS NULL"
        ),
        source_rows(&db, "SELECT count(*) FROM shop.t")
    );
    // The table with no key: a multiset, each copy once.
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/k"),
            &[],
            "SELECT a, b, z FROM t ORDER BY a, b, z"
        ),
        source_rows(&db, "SELECT a, b, z FROM shop.k ORDER BY a, b, z"),
        "the keyless table's silver holds the server's rows, each copy once"
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/k__history"),
            &[],
            "SELECT count(*) FROM t WHERE __end_position IS NULL"
        ),
        source_rows(&db, "SELECT count(*) FROM shop.k")
    );
}

#[test]
fn every_ddl_under_lenient_with_sigkills_keeps_what_it_promises() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop;");
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = torture(&db, "lenient", dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    // The columns lenient follows exactly: renamed ones start anew, so they are left out.
    // DECIMAL(12,3) → DECIMAL(12,1) is no narrowing lenient keeps away from (two more integer
    // digits): `c` is cast, rounded as the server rounds.
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/t"),
            &[],
            "SELECT id, a, c, to_char(d, '%Y-%m-%dT%H:%M:%S'), arrow_typeof(a), arrow_typeof(c) FROM t ORDER BY id, a"
        ),
        source_rows(
            &db,
            "SELECT id, a, c, DATE_FORMAT(d, '%Y-%m-%dT%H:%i:%s'), 'Int64', 'Decimal128(12, 1)' FROM shop.t ORDER BY id, a"
        ),
        "silver equals the server; `a` stayed BIGINT after the narrowing, `c` was cast"
    );
}

#[test]
fn the_first_schema_change_under_stop_stops_the_table_visibly() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop;");
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = torture(&db, "stop", dir.path());
    assert_ne!(code, Some(0), "{stderr}");
    // ADD COLUMN and TRUNCATE are followed under every policy; the widening of `a` is the
    // first stop.
    assert!(
        stderr.contains("shop.t: stopped applying: column a: schema_changes = \"stop\" for this table, and its DDL changed: a Int32 → Int64"),
        "{stderr}"
    );
}
