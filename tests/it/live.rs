//! Live capture from a private MariaDB with the real binary (`binlake source`) as a separate
//! process: every type against SELECT, resume, SIGKILL at random points, a server restart,
//! a purged binlog, a 1M-row transaction.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::mariadb_replay::{assert_all_types_state_equals_select, fold};
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;
use crate::support::wait_for;
use crate::{read_checkpoint, KillOnDrop};

struct Capture {
    dir: tempfile::TempDir,
}

impl Capture {
    fn new(db: &MariaDb, extra: &str) -> Capture {
        let dir = tempfile::tempdir().unwrap();
        Scenario::source(db, 4401)
            .source_keys("connect_timeout_secs = 3")
            .source_keys(extra)
            .ndjson("out.ndjson")
            .write(dir.path(), "source.toml");
        Capture { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("source.toml")
    }

    fn output(&self) -> PathBuf {
        self.dir.path().join("out.ndjson")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_binlake"));
        c.arg("source").arg("--config").arg(self.config());
        c.env("BINLAKE_LOG", "info");
        c
    }

    /// Runs until caught up; returns (exit code, stderr).
    fn run_to_end(&self) -> (Option<i32>, String) {
        let out = self
            .command()
            .arg("--exit-when-caught-up")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn spawn(&self) -> KillOnDrop {
        KillOnDrop(
            self.command()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn events(&self) -> Vec<Value> {
        read_events(&self.output())
    }
}

fn read_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A SIGKILL can leave a torn last line after the last fsync; the sink ignores it, and
    // the restarted source writes those changes again.
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn sql_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn live_capture_of_every_type_equals_select_and_resumes_without_duplicates() {
    let db = MariaDb::start();
    db.sql_file(&sql_path("sql/workload/all_types.sql"));
    let capture = Capture::new(&db, "");
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    let first = capture.events();
    // 26 changes, and the 2 rows of `new_name` read by the snapshot its RENAME TABLE asks for
    // (no insert carries them under the new name).
    assert_eq!(first.len(), 28, "{stderr}");
    let reads: Vec<&Value> = first.iter().filter(|e| e["op"] == "r").collect();
    assert_eq!(reads.len(), 2, "{stderr}");
    assert!(reads.iter().all(|e| e["source"]["table"] == "new_name"));
    let mut folded = fold(&first);
    assert_all_types_state_equals_select(&db, &mut folded);
    // Commit order: positions strictly increase.
    let pos: Vec<(u64, u64)> = first
        .iter()
        .map(|e| {
            (
                e["source"]["pos"].as_u64().unwrap(),
                e["source"]["row"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]));

    // More changes; the second run starts at the checkpoint: only the new ones, once.
    db.sql("INSERT INTO binlake_types.latin VALUES (3, 'drei', NULL); DELETE FROM binlake_types.latin WHERE id = 2;");
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    let all = capture.events();
    assert_eq!(all.len(), 30, "{stderr}");
    assert_eq!(all[28]["op"], "c");
    assert_eq!(all[28]["after"]["name"], "drei");
    assert_eq!(all[29]["op"], "d");
    assert_eq!(all[29]["before"]["id"], 2);
}

#[test]
fn gtid_resume_on_mariadb() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE g; CREATE TABLE g.t (id INT PRIMARY KEY); INSERT INTO g.t VALUES (1), (2);");
    let capture = Capture::new(&db, "resume_by = \"gtid\"");
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    let checkpoint = read_checkpoint(capture.dir.path()).unwrap();
    assert_eq!(checkpoint["gtid"], "0-1-3");
    db.sql("INSERT INTO g.t VALUES (3);");
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    let ev = capture.events();
    let ids: Vec<u64> = ev
        .iter()
        .map(|e| e["after"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(ev[2]["source"]["gtid"], "0-1-4");
}

#[test]
fn sigkill_at_random_points_loses_nothing() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE k; CREATE TABLE k.t (id INT PRIMARY KEY, v INT, note VARCHAR(20));");
    let capture = Capture::new(&db, "");
    // A writer in the background: 60 transactions of inserts, updates and deletes.
    let mut script = String::new();
    for i in 0..60 {
        script.push_str(&format!(
            "START TRANSACTION; INSERT INTO k.t VALUES ({a}, {i}, 'n{i}'), ({b}, {i}, 'm{i}'); \
             UPDATE k.t SET v = v + 1 WHERE id % 3 = {m}; DELETE FROM k.t WHERE id = {d}; COMMIT; SELECT SLEEP(0.02);\n",
            a = 2 * i,
            b = 2 * i + 1,
            m = i % 3,
            d = i
        ));
    }
    let writer = db.spawn_writer(script);
    // Kill the source at pseudo-random moments while the writer runs.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..8 {
        let mut source = capture.spawn();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 400));
        source.kill().unwrap(); // SIGKILL
        source.wait().unwrap();
    }
    writer.join().unwrap();
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");

    let events = capture.events();
    let folded = fold(&events);
    let mine = folded.tables.get("t").cloned().unwrap_or_default();
    let selected: Vec<Value> = db
        .sql("SELECT JSON_OBJECT('id', id, 'v', v, 'note', note) FROM k.t ORDER BY id")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mine: Vec<&Value> = mine.values().collect();
    let mut mine_sorted = mine.clone();
    mine_sorted.sort_by_key(|v| v["id"].as_u64());
    assert_eq!(mine_sorted.len(), selected.len());
    for (m, s) in mine_sorted.iter().zip(&selected) {
        assert_eq!(*m, s);
    }
    // Every change the binlog holds is there (duplicates are allowed, losses are not):
    // 60 transactions of 2 inserts, some updates and 1 delete each.
    let inserts = events
        .iter()
        .filter(|e| e["op"] == "c")
        .map(|e| e["after"]["id"].as_u64())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(inserts.len(), 120);
}

#[test]
fn server_restart_mid_stream_is_survived() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE r; CREATE TABLE r.t (id INT PRIMARY KEY); INSERT INTO r.t VALUES (1);");
    let capture = Capture::new(&db, "");
    let mut source = capture.spawn();
    wait_for("the first change", Duration::from_secs(20), || {
        capture.events().len() == 1
    });
    db.restart();
    db.sql("INSERT INTO r.t VALUES (2), (3);");
    wait_for("changes after the restart", Duration::from_secs(30), || {
        capture.events().len() >= 3
    });
    // SIGTERM (docker stop, Kubernetes) lets it checkpoint and exit 0.
    Command::new("kill")
        .args(["-TERM", &source.id().to_string()])
        .status()
        .unwrap();
    let status = source.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let ids: Vec<u64> = capture
        .events()
        .iter()
        .map(|e| e["after"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    // The stop checkpointed past the last change: a restart publishes nothing again.
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(capture.events().len(), 3);
}

#[test]
fn purged_binlog_stops_with_the_recovery() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY); INSERT INTO p.t VALUES (1);");
    let capture = Capture::new(&db, "");
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    db.sql("INSERT INTO p.t VALUES (2); FLUSH BINARY LOGS; FLUSH BINARY LOGS;");
    let newest = db
        .binlogs()
        .last()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // The server keeps a file a departing dump thread still reads: retry until it is gone.
    wait_for("the purge", Duration::from_secs(20), || {
        db.sql(&format!("PURGE BINARY LOGS TO '{newest}';"));
        !db.sql("SHOW BINARY LOGS").contains("mariadb-bin.000001")
    });
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is no longer on the server"), "{stderr}");
    assert!(stderr.contains("mariadb-bin.000001"), "{stderr}");
    assert!(stderr.contains("new snapshot"), "{stderr}");
    // Nothing after the purge point was skipped silently: the output holds only row 1.
    assert_eq!(capture.events().len(), 1);
}

#[test]
fn one_million_row_transaction() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE big; CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         USE big; START TRANSACTION; INSERT INTO big.t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000000; COMMIT;",
    );
    let capture = Capture::new(&db, "include = [\"big.*\"]");
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(capture.output()).unwrap();
    let mut count = 0u64;
    let mut last = None;
    for line in text.lines() {
        count += 1;
        last = Some(line);
    }
    assert_eq!(count, 1_000_000);
    let last: Value = serde_json::from_str(last.unwrap()).unwrap();
    assert_eq!(last["after"]["id"], 1_000_000);
    assert_eq!(last["transaction"]["total_order"], 1_000_000);
}

#[test]
fn check_passes_a_ready_server_and_names_every_fix_on_a_wrong_one() {
    let db = MariaDb::start();
    let capture = Capture::new(&db, "");
    let out = Command::new(env!("CARGO_BIN_EXE_binlake"))
        .arg("check")
        .arg("--config")
        .arg(capture.config())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for expected in [
        "ok    binlog_format        ROW",
        // The statements start runs, with the names MariaDB 10.11 documents.
        "ok    binlog position      SHOW BINLOG STATUS: mariadb-bin.000001:",
        "ok    binlog files         oldest mariadb-bin.000001",
        "ok    replication session  SET @master_heartbeat_period = 1000000000; SET @source_heartbeat_period = 1000000000; SET @mariadb_slave_capability = 4",
        "ok    tls                  plain TCP on loopback",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(stdout.ends_with("capture can start\n"), "{stdout}");

    let bad = MariaDb::start_with(&[
        "--binlog-format=STATEMENT",
        "--binlog-row-image=MINIMAL",
        "--binlog-row-metadata=MINIMAL",
        "--binlog-expire-logs-seconds=3600",
    ]);
    bad.sql("CREATE USER 'weak'@'%'; GRANT SELECT ON *.* TO 'weak'@'%';");
    let capture = Capture::new(&bad, "");
    let config = std::fs::read_to_string(capture.config())
        .unwrap()
        .replace("mysql://root@", "mysql://weak@")
        .replace("server_id = 4401", "server_id = 1");
    std::fs::write(capture.config(), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_binlake"))
        .arg("check")
        .arg("--config")
        .arg(capture.config())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "FAIL  binlog_format        STATEMENT",
        "SET GLOBAL binlog_format = 'ROW'",
        "FAIL  binlog_row_image     MINIMAL",
        "WARN  binlog_row_metadata  MINIMAL",
        "FAIL  server_id            binlake's server_id 1 is the server's own",
        "WARN  binlog retention     1 h",
        "FAIL  privileges           missing REPLICATION SLAVE, BINLOG MONITOR",
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'weak'@'%'",
        // Statements start would run, refused here, not passed over.
        "FAIL  binlog position      mysql://weak@127.0.0.1:",
        "FAIL  binlog files         mysql://weak@127.0.0.1:",
        "FAIL  replicas             SHOW REPLICA HOSTS: ",
        "capture cannot start until the failures are fixed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

/// A binlog position as the envelope carries it, comparable.
type Pos = (String, u64, u64);

fn position(e: &Value) -> Pos {
    let s = &e["source"];
    (
        s["file"].as_str().unwrap().to_string(),
        s["pos"].as_u64().unwrap(),
        s["row"].as_u64().unwrap(),
    )
}

/// Applies events the way binlake's sink does: per key, a change at or before the position
/// already applied for that key is skipped (snapshot rows, re-delivered duplicates).
fn fold_by_position(events: &[Value], key: &str) -> std::collections::BTreeMap<u64, Value> {
    let mut state: std::collections::BTreeMap<u64, (Pos, Option<Value>)> = Default::default();
    for e in events {
        let p = position(e);
        let mut apply = |k: u64, row: Option<Value>| {
            if state.get(&k).is_some_and(|(applied, _)| *applied >= p) {
                return;
            }
            state.insert(k, (p.clone(), row));
        };
        let before_key = e["before"][key].as_u64();
        let after_key = e["after"][key].as_u64();
        if let (Some(b), true) = (before_key, before_key != after_key) {
            apply(b, None);
        }
        if let Some(a) = after_key {
            apply(a, Some(e["after"].clone()));
        }
    }
    state
        .into_iter()
        .filter_map(|(k, (_, row))| row.map(|r| (k, r)))
        .collect()
}

#[test]
fn snapshot_of_every_type_equals_select() {
    let db = MariaDb::start();
    db.sql_file(&sql_path("sql/workload/all_types.sql"));
    let capture = Capture::new(&db, "");
    let config = std::fs::read_to_string(capture.config())
        .unwrap()
        .replace("snapshot = \"never\"", "snapshot = \"only\"");
    std::fs::write(capture.config(), config).unwrap();
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");
    let events = capture.events();
    // `no_pk` has no key: a TRUNCATE, marked as the snapshot's, comes just before its rows
    // (silver keeps such a table as a multiset, which the read replaces).
    assert!(events.iter().all(|e| e["source"]["snapshot"] == "true"
        && (e["op"] == "r" || (e["op"] == "t" && e["source"]["table"] == "no_pk"))));
    let no_pk: Vec<_> = events
        .iter()
        .filter(|e| e["source"]["table"] == "no_pk")
        .map(|e| e["op"].as_str().unwrap())
        .collect();
    assert!(
        no_pk.len() > 1 && no_pk[0] == "t" && no_pk[1..].iter().all(|op| *op == "r"),
        "{no_pk:?}"
    );
    assert!(
        stderr.contains("snapshot binlake_types.all_types: 6 of about"),
        "{stderr}"
    );
    let mut folded = fold(&events);
    assert_all_types_state_equals_select(&db, &mut folded);
}

#[test]
fn snapshot_of_a_million_rows_while_writes_continue_and_after_a_crash() {
    snapshot_under_writes_and_a_crash("server");
}

/// The lock-free watermark snapshot (MySQL's default) on MariaDB, under the same writes and
/// crash: no FLUSH TABLES WITH READ LOCK is ever run, and the watermarks are cleaned up.
#[test]
fn watermark_snapshot_of_a_million_rows_while_writes_continue_and_after_a_crash() {
    snapshot_under_writes_and_a_crash("watermark");
}

/// The read-only snapshot (no lock, no writes: for a server binlake may only read) on MariaDB,
/// where each chunk is placed by the binlog position MariaDB reports for its read; the same
/// reconciliation MySQL's executed GTID sets feed.
#[test]
fn read_only_snapshot_of_a_million_rows_while_writes_continue_and_after_a_crash() {
    snapshot_under_writes_and_a_crash("read_only");
}

fn global_status(db: &MariaDb, name: &str) -> u64 {
    db.sql(&format!("SHOW GLOBAL STATUS LIKE '{name}'"))
        .split_once('\t')
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no status {name}"))
}

/// A 1M-row snapshot with `snapshot_positions = POSITIONS` while updates, deletes, inserts and
/// primary-key moves run all over the key range, SIGKILLed once mid-snapshot: the events,
/// folded per key by position as the lake does, equal the server's rows.
fn snapshot_under_writes_and_a_crash(positions: &str) {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE s; USE s; CREATE TABLE t (id INT PRIMARY KEY, v BIGINT NOT NULL); \
         INSERT INTO t SELECT seq, seq FROM seq_1_to_1000000;",
    );
    let capture = Capture::new(
        &db,
        &format!(
            "snapshot_chunk_rows = 50000\ninclude = [\"s.*\"]\nsnapshot_positions = \"{positions}\""
        ),
    );
    let flushes_before = global_status(&db, "Com_flush");
    let config = std::fs::read_to_string(capture.config())
        .unwrap()
        .replace("snapshot = \"never\"", "snapshot = \"initial\"");
    std::fs::write(capture.config(), config).unwrap();

    // Writes all over the key range while the snapshot runs: updates, deletes, inserts, and
    // primary-key moves.
    let mut script = String::from("USE s;\n");
    for i in 0..200u64 {
        let k = 1 + (i * 4_999) % 1_000_000;
        script.push_str(&format!(
            "UPDATE t SET v = v + 1000000 WHERE id BETWEEN {k} AND {k} + 50; \
             DELETE FROM t WHERE id = {d}; INSERT INTO t VALUES ({n}, {i}); \
             UPDATE t SET id = {m} WHERE id = {k2}; SELECT SLEEP(0.01);\n",
            d = k + 60,
            n = 2_000_000 + i,
            m = 3_000_000 + i,
            k2 = k + 70,
        ));
    }
    let locks = db.watch_locks();
    let writer = db.spawn_writer(script);

    // Crash mid-snapshot once, after at least two chunks are checkpointed.
    let mut source = capture.spawn();
    wait_for("two snapshot chunks", Duration::from_secs(120), || {
        read_checkpoint(capture.dir.path())
            .and_then(|c| c["snapshot"]["tables"][0]["rows"].as_u64())
            .is_some_and(|rows| rows >= 100_000)
    });
    source.kill().unwrap();
    source.wait().unwrap();
    let mut source = capture.spawn();
    writer.join().unwrap();
    wait_for("the snapshot to finish", Duration::from_secs(180), || {
        read_checkpoint(capture.dir.path()).is_some_and(|c| c["snapshot_done"] == true)
    });
    Command::new("kill")
        .args(["-INT", &source.id().to_string()])
        .status()
        .unwrap();
    assert!(source.wait().unwrap().success());
    let (samples, waits) = locks.finish();
    assert!(samples >= 10, "the processlist was sampled {samples} times");
    assert_eq!(
        waits,
        Vec::<String>::new(),
        "no session waited for a lock and none ran FLUSH TABLES / LOCK TABLES during the snapshot ({samples} samples)"
    );
    let (code, stderr) = capture.run_to_end();
    assert_eq!(code, Some(0), "{stderr}");

    let events = capture.events();
    let reads = events.iter().filter(|e| e["op"] == "r").count();
    // The server's positions keep every row read; watermarks drop the keys changed while
    // their chunk was read, read-only the keys whose last change the read did not see (the
    // stream carries those).
    let least = if positions != "server" {
        1_000_000 - 20_000
    } else {
        1_000_000 - 200
    };
    assert!(reads >= least, "{reads} snapshot rows");
    let mine = fold_by_position(&events, "id");
    let selected: Vec<(u64, u64)> = db
        .sql("SELECT id, v FROM s.t ORDER BY id")
        .lines()
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(mine.len(), selected.len());
    for (id, v) in selected {
        let row = mine.get(&id).unwrap_or_else(|| panic!("id {id} missing"));
        assert_eq!(row["v"].as_u64(), Some(v), "id {id}");
    }
    assert_eq!(
        global_status(&db, "Com_flush"),
        flushes_before,
        "the snapshot took no FLUSH TABLES WITH READ LOCK"
    );
    if positions == "read_only" {
        assert_eq!(
            db.sql(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'binlake'"
            )
            .trim(),
            "0",
            "the read-only snapshot writes nothing to the server"
        );
    }
    if positions == "watermark" {
        assert_eq!(
            db.sql("SELECT COUNT(*) FROM binlake.watermarks").trim(),
            "0",
            "the watermarks are removed at the end"
        );
        assert!(
            events.iter().all(|e| e["source"]["table"] != "watermarks"),
            "watermarks are never published"
        );
    }
}
