//! A thousand tables created and written while `binlake run` runs (embedded, local lake): each
//! lands in bronze, silver and history with its rows, and the run's peak memory is printed and
//! bounded. Silver is read back by Python's deltalake (tests/it/many_tables.py).

use std::time::{Duration, Instant};

use crate::support::lake::python;
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;

const TABLES: usize = 1000;

/// `many.make_tables(n)`: creates `many.t0001`…, each with three rows, one of them updated.
const MAKE_TABLES: &str = r"
CREATE DATABASE many;
USE many;
DELIMITER //
CREATE PROCEDURE make_tables(n INT)
BEGIN
  DECLARE i INT DEFAULT 1;
  WHILE i <= n DO
    SET @t = CONCAT('t', LPAD(i, 4, '0'));
    SET @s = CONCAT('CREATE TABLE ', @t, ' (id INT PRIMARY KEY, v VARCHAR(20))');
    PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
    SET @s = CONCAT('INSERT INTO ', @t, ' VALUES (1, ''a''), (2, ''b''), (3, ''c'')');
    PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
    SET @s = CONCAT('UPDATE ', @t, ' SET v = ''B'' WHERE id = 2');
    PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
    SET i = i + 1;
  END WHILE;
END //
DELIMITER ;
";

/// Peak resident memory of process `pid` in MB (Linux: `VmHWM`).
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

#[test]
fn a_thousand_tables_created_while_running_all_land() {
    let db = MariaDb::start();
    db.sql(MAKE_TABLES);
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4901)
        .include("many.*")
        .embedded_lake()
        .write(dir.path(), "many.toml");
    let mut run = crate::support::spawn_binlake("run", &config, std::process::Stdio::null());
    // The tables come into being while the pipeline streams.
    std::thread::sleep(Duration::from_secs(2));
    db.sql(&format!("CALL many.make_tables({TABLES})"));
    let lake = dir.path().join("lake");
    let check = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/many_tables.py");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    while Instant::now() < deadline {
        assert!(run.try_wait().unwrap().is_none(), "binlake run ended early");
        if lake.join("silver/many").is_dir() {
            let out = crate::run_ok(std::process::Command::new(python()).arg(&check).arg(&lake));
            last = String::from_utf8(out.stdout).unwrap().trim().to_string();
            if last == format!("{TABLES} {TABLES}") {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let peak = peak_rss_mb(run.id());
    println!("binlake run with {TABLES} tables: peak RSS {peak} MB");
    run.kill().unwrap();
    assert_eq!(
        last,
        format!("{TABLES} {TABLES}"),
        "silver tables, and those holding their rows"
    );
    for layer in ["bronze/many", "silver/many"] {
        let n = std::fs::read_dir(lake.join(layer)).unwrap().count();
        let expected = if layer == "silver/many" {
            2 * TABLES
        } else {
            TABLES
        };
        assert_eq!(n, expected, "{layer}: tables (silver with their histories)");
    }
    assert!(peak < 1024, "peak RSS {peak} MB");
}
