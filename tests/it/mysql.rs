//! binlake against the MySQL stand-in (tests/it/support/mysql_standin.rs) as MySQL 8.0, 8.4 and
//! 9.x: capture of binlogs real MySQL 8.0.31 and 9.0.1 servers wrote (compressed transactions,
//! VECTOR columns) equals `binlake replay` of the same files, with each release's own statements;
//! both paths of caching_sha2_password and native passwords; `check` passes; the statements 8.4
//! removed are refused as 8.4 refuses them and binlake never sends them; resuming by GTID loses
//! and repeats nothing; a binlog the server no longer has stops capture with the recovery; TLS in
//! every mode.

use std::path::Path;

use serde_json::Value;

use crate::support::mysql_standin::{MySqlStandIn, StandInSpec};
use crate::support::scenario::Scenario;
use crate::{fixture, replay_ok};

const FILE: &str = "binlogs/mysql-8/mysql-bin.000057";

/// `binlake ARGS --config CONFIG` with the stand-in's password in the environment: (exit code,
/// stdout, stderr).
fn binlake_with_password(args: &[&str], config: &Path) -> (Option<i32>, String, String) {
    binlake_with_env(args, config, "STANDIN_PASSWORD", "s3cret")
}

/// `binlake ARGS --config CONFIG` with `var=value` in the environment.
fn binlake_with_env(
    args: &[&str],
    config: &Path,
    var: &str,
    value: &str,
) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env(var, value)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The change events `binlake source` wrote to `dir/out.ndjson`, as [`essence`]s.
fn captured(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.ndjson"))
        .unwrap()
        .lines()
        .map(|l| essence(&serde_json::from_str(l).unwrap()))
        .collect()
}

/// What two change events must agree on (processing time aside).
fn essence(e: &Value) -> Value {
    let s = &e["source"];
    serde_json::json!({
        "op": e["op"], "before": e["before"], "after": e["after"],
        "db": s["db"], "table": s["table"], "file": s["file"], "pos": s["pos"],
        "row": s["row"], "gtid": s["gtid"],
    })
}

#[test]
fn capture_from_each_mysql_release_equals_replay_with_its_own_statements() {
    // Each release serves a binlog a real server of its line wrote: 8.0.31's compressed
    // transactions, and 9.0.1's VECTOR columns.
    for (version, file) in [
        ("8.0.36", FILE),
        ("8.4.3", FILE),
        ("9.1.0", "binlogs/mysql-8/vector.binlog"),
    ] {
        let expected: Vec<Value> = replay_ok(file).iter().map(essence).collect();
        assert!(expected.len() >= 2, "{file} holds changes");
        let standin = MySqlStandIn::start(StandInSpec::mysql(version, &[fixture(file)]));
        let dir = tempfile::tempdir().unwrap();
        let config = Scenario::source_at(standin.port, "binlake", "STANDIN_PASSWORD", 4990)
            .ndjson("out.ndjson")
            .write(dir.path(), "source.toml");
        let (code, _, stderr) =
            binlake_with_password(&["source", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{version}: {stderr}");
        let events: Vec<Value> = captured(dir.path());
        assert_eq!(events, expected, "{version}");

        let statements = standin.statements.lock().unwrap().clone();
        let sent = |s: &str| statements.iter().any(|x| x.eq_ignore_ascii_case(s));
        if version == "8.0.36" {
            assert!(sent("SHOW MASTER STATUS"), "{statements:?}");
        } else {
            assert!(sent("SHOW BINARY LOG STATUS"), "{version}: {statements:?}");
            assert!(!sent("SHOW MASTER STATUS"), "{version}: {statements:?}");
        }
        for heartbeat in [
            "SET @source_heartbeat_period = 1000000000",
            "SET @master_heartbeat_period = 1000000000",
        ] {
            assert!(sent(heartbeat), "{version}: {statements:?}");
        }
        // caching_sha2_password: the first login took the full path (the RSA key over plain
        // TCP), the later ones the fast path.
        use std::sync::atomic::Ordering;
        assert_eq!(standin.auth.full.load(Ordering::Relaxed), 1, "{version}");
        assert!(standin.auth.fast.load(Ordering::Relaxed) >= 1, "{version}");
    }
}

#[test]
fn mysql_native_password_users_and_wrong_passwords() {
    let mut spec = StandInSpec::mysql("8.4.3", &[fixture(FILE)]);
    spec.users.push((
        "legacy".into(),
        "0ld-pass".into(),
        "mysql_native_password".into(),
    ));
    let standin = MySqlStandIn::start(spec);
    let dir = tempfile::tempdir().unwrap();
    let native = Scenario::source_at(standin.port, "legacy", "LEGACY_PASSWORD", 4994)
        .ndjson("out.ndjson")
        .write(dir.path(), "native.toml");
    let (code, stdout, stderr) =
        binlake_with_env(&["check"], &native, "LEGACY_PASSWORD", "0ld-pass");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok    server               8.4.3"),
        "{stdout}"
    );
    // A wrong password, on both plugins, is the server's access denied.
    let (code, _, stderr) = binlake_with_env(&["check"], &native, "LEGACY_PASSWORD", "wrong");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Access denied for user 'legacy'"),
        "{stderr}"
    );
    let sha2 = Scenario::source_at(standin.port, "binlake", "STANDIN_PASSWORD", 4995)
        .ndjson("out.ndjson")
        .write(dir.path(), "sha2.toml");
    let (code, _, stderr) = binlake_with_env(&["check"], &sha2, "STANDIN_PASSWORD", "wrong");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Access denied for user 'binlake'"),
        "{stderr}"
    );
}

#[test]
fn check_passes_against_mysql_8_4_and_the_removed_statements_are_refused() {
    let standin = MySqlStandIn::start(StandInSpec::mysql("8.4.3", &[fixture(FILE)]));
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source_at(standin.port, "binlake", "STANDIN_PASSWORD", 4991)
        .ndjson("out.ndjson")
        .write(dir.path(), "source.toml");
    let (code, stdout, stderr) = binlake_with_password(&["check"], &config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for expected in [
        "ok    server               8.4.3",
        "ok    binlog position      SHOW BINARY LOG STATUS: mysql-bin.000057:",
        "ok    server_id            4991 (server 1)",
        "ok    gtid                 gtid_mode=ON",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let statements = standin.statements.lock().unwrap().clone();
    assert!(
        statements.iter().any(|s| s == "SHOW REPLICAS"),
        "{statements:?}"
    );
    assert!(
        !statements
            .iter()
            .any(|s| s.contains("MASTER") || s.contains("SLAVE HOSTS")),
        "{statements:?}"
    );

    // What MySQL 8.4 answers to the statements it removed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use mysql_async::prelude::Queryable;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(standin.port)
            .user(Some("binlake"))
            .pass(Some("s3cret"))
            .prefer_socket(false);
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        for removed in ["SHOW MASTER STATUS", "SHOW SLAVE HOSTS"] {
            match conn.query_drop(removed).await {
                Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1064, "{removed}"),
                other => panic!("{removed}: {other:?}"),
            }
        }
        let _ = conn.disconnect().await;
    });
}

#[test]
fn a_binlog_the_server_no_longer_has_stops_capture_with_the_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let first = MySqlStandIn::start(StandInSpec::mysql("8.4.3", &[fixture(FILE)]));
    let config = Scenario::source_at(first.port, "binlake", "STANDIN_PASSWORD", 4992)
        .ndjson("out.ndjson")
        .write(dir.path(), "source.toml");
    let (code, _, stderr) = binlake_with_password(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    drop(first);
    // The same server after mysql-bin.000057 was purged: only a later file is left.
    let purged = tempfile::tempdir().unwrap();
    let next = purged.path().join("mysql-bin.000058");
    std::fs::copy(fixture("binlogs/mysql-8/json.binlog.000001"), &next).unwrap();
    let later = MySqlStandIn::start(StandInSpec::mysql("8.4.3", &[next]));
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!(":{}\"", later_port_placeholder(&config)),
        &format!(":{}\"", later.port),
    );
    std::fs::write(&config, text).unwrap();
    let (code, _, stderr) = binlake_with_password(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(1), "{stderr}");
    for expected in [
        "the binlog to resume from (mysql-bin.000057:",
        "is no longer on the server: Could not find first log file name in binary log index file",
        "recover with a new snapshot",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
}

/// The port the config's URL names now.
fn later_port_placeholder(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let url = text.lines().find(|l| l.starts_with("url = ")).unwrap();
    url.rsplit_once(':')
        .unwrap()
        .1
        .trim_end_matches('"')
        .to_string()
}

/// Byte offsets of the GTID events (type 33) of a binlog file: where its transactions begin.
fn transaction_starts(path: &Path) -> Vec<u64> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 4;
    while at + 19 <= data.len() {
        let size = u32::from_le_bytes(data[at + 9..at + 13].try_into().unwrap()) as usize;
        if data[at + 4] == 33 {
            out.push(at as u64);
        }
        at += size.max(19);
    }
    out
}

#[test]
fn resume_by_gtid_after_a_stop_loses_and_repeats_no_transaction() {
    let file = fixture(FILE);
    let starts = transaction_starts(&file);
    assert!(starts.len() >= 2, "two transactions: {starts:?}");
    let dir = tempfile::tempdir().unwrap();
    // The server has written the first transaction only.
    let mut spec = StandInSpec::mysql("8.4.3", std::slice::from_ref(&file));
    spec.written = Some(starts[1]);
    let first = MySqlStandIn::start(spec);
    let config = Scenario::source_at(first.port, "binlake", "STANDIN_PASSWORD", 4993)
        .source_keys("resume_by = \"gtid\"")
        .ndjson("out.ndjson")
        .write(dir.path(), "source.toml");
    let (code, _, stderr) = binlake_with_password(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let checkpoint = crate::read_checkpoint(dir.path()).expect("a checkpoint");
    let executed = checkpoint["gtid"].as_str().unwrap().to_string();
    assert!(!executed.is_empty(), "{checkpoint}");
    drop(first);

    // Later: the whole file; binlake asks by GTID, and the server skips what it has.
    let second = MySqlStandIn::start(StandInSpec::mysql("8.4.3", std::slice::from_ref(&file)));
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!(":{}\"", later_port_placeholder(&config)),
        &format!(":{}\"", second.port),
    );
    std::fs::write(&config, text).unwrap();
    let (code, _, stderr) = binlake_with_password(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("by_gtid=true"), "{stderr}");

    let expected: Vec<Value> = replay_ok(FILE).iter().map(essence).collect();
    let events: Vec<Value> = captured(dir.path());
    assert_eq!(
        events, expected,
        "every change once, in order, across the stop"
    );
    let after = crate::read_checkpoint(dir.path()).unwrap();
    assert_ne!(
        after["gtid"].as_str().unwrap(),
        executed,
        "the executed set moved on"
    );
}

/// `binlake check` against stand-ins dressed as each managed service (their own variables, and
/// RDS's `mysql.rds_show_configuration`): the service is named, and each fix says how that
/// service sets it (parameter group, server parameter, database flag), not SET GLOBAL.
#[test]
fn check_recognises_managed_services_and_names_their_own_fixes() {
    let persona = |variables: &[(&str, &str)], rds: Option<Option<&str>>| {
        let mut spec = StandInSpec::mysql("8.4.3", &[fixture(FILE)]);
        spec.variables = variables
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        spec.rds_configuration = rds.map(|hours| {
            vec![
                (
                    "binlog retention hours".to_string(),
                    hours.map(str::to_string),
                ),
                ("source delay".to_string(), Some("0".to_string())),
            ]
        });
        let standin = MySqlStandIn::start(spec);
        let (code, stdout, stderr) = check_with(standin.port, "127.0.0.1", "");
        (code, stdout, stderr)
    };

    // RDS without binlog retention hours: capture can start, with the procedure to call.
    let (code, stdout, stderr) = persona(&[("basedir", "/rdsdbbin/mysql/")], Some(None));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for expected in [
        "ok    service              Amazon RDS for MySQL (basedir=/rdsdbbin/mysql/)",
        "WARN  binlog retention     binlog retention hours is not set",
        "fix: as the master user: CALL mysql.rds_set_configuration('binlog retention hours', 72);",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let (_, stdout, _) = persona(&[("basedir", "/rdsdbbin/mysql/")], Some(Some("168")));
    assert!(
        stdout.contains("ok    binlog retention     168 h (binlog retention hours)"),
        "{stdout}"
    );

    // Aurora with a MINIMAL row image: a failure whose fix is the cluster parameter group.
    let (code, stdout, _) = persona(
        &[
            ("aurora_version", "3.08.0"),
            ("basedir", "/rdsdbbin/oscar/"),
            ("binlog_row_image", "MINIMAL"),
        ],
        Some(Some("72")),
    );
    assert_eq!(code, Some(1), "{stdout}");
    for expected in [
        "ok    service              Amazon Aurora MySQL (aurora_version=3.08.0)",
        "FAIL  binlog_row_image     MINIMAL",
        "fix: set binlog_row_image = FULL in the DB cluster parameter group",
        "ok    binlog retention     72 h (binlog retention hours)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    // Azure with GTIDs off and plain TCP allowed: server parameters through the az CLI.
    let (code, stdout, _) = persona(
        &[
            ("aad_auth_only", "OFF"),
            ("gtid_mode", "OFF"),
            ("require_secure_transport", "OFF"),
            ("binlog_expire_logs_seconds", "3600"),
        ],
        None,
    );
    assert_eq!(code, Some(0), "{stdout}");
    for expected in [
        "ok    service              Azure Database for MySQL flexible server (aad_auth_only=OFF)",
        "az mysql flexible-server parameter set --resource-group <group> --server-name <server> --name enforce_gtid_consistency --value ON",
        "WARN  secure transport     require_secure_transport=OFF",
        "--name require_secure_transport --value ON",
        "WARN  binlog retention     1 h",
        "fix: set the server parameter binlog_expire_logs_seconds to 259200",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }

    // Cloud SQL: database flags.
    let (_, stdout, _) = persona(
        &[
            ("cloudsql_iam_authentication", "off"),
            ("binlog_row_metadata", "MINIMAL"),
        ],
        None,
    );
    for expected in [
        "ok    service              Google Cloud SQL for MySQL (cloudsql_iam_authentication=off)",
        "gcloud sql instances patch <instance> --database-flags=binlog_row_metadata=FULL",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    // A server run by hand is none of them, and keeps the my.cnf advice.
    let (_, stdout, _) = persona(&[("binlog_row_metadata", "MINIMAL")], None);
    assert!(!stdout.contains("service"), "{stdout}");
    assert!(
        stdout.contains("SET GLOBAL binlog_row_metadata = 'FULL' (and under [mysqld])"),
        "{stdout}"
    );
}

/// `snapshot_positions = "read_only"` needs GTIDs on MySQL: `check` says so, and passes once
/// they are on, without asking for write access.
#[test]
fn check_of_the_read_only_snapshot_asks_for_gtids_not_writes() {
    let run = |gtid_mode: &str| {
        let mut spec = StandInSpec::mysql("8.4.3", &[fixture(FILE)]);
        spec.variables = vec![
            ("gtid_mode".into(), gtid_mode.into()),
            (
                "gtid_executed".into(),
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57".into(),
            ),
        ];
        let standin = MySqlStandIn::start(spec);
        let dir = tempfile::tempdir().unwrap();
        let config = Scenario::source_at(standin.port, "binlake", "STANDIN_PASSWORD", 4993)
            .snapshot("initial")
            .source_keys("snapshot_positions = \"read_only\"")
            .ndjson("out.ndjson")
            .write(dir.path(), "ro.toml");
        binlake_with_password(&["check"], &config)
    };
    let (code, stdout, stderr) = run("OFF");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "FAIL  snapshot             snapshot_positions = \"read_only\" with gtid_mode=OFF"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = run("ON");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok    snapshot             read-only: each chunk placed by @@global.gtid_executed; no lock, no writes"),
        "{stdout}"
    );
}

/// `binlake check` against `port` reached as `host` with `[source]` keys `keys`: (exit code,
/// stdout, stderr).
fn check_with(port: u16, host: &str, keys: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source_at(port, "binlake", "STANDIN_PASSWORD", 4996)
        .source_keys(keys)
        .ndjson("out.ndjson")
        .write(dir.path(), "tls.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("@127.0.0.1:", &format!("@{host}:"));
    std::fs::write(&config, text).unwrap();
    binlake_with_password(&["check"], &config)
}

#[test]
fn tls_to_mysql_in_every_mode_with_caching_sha2_full_path_inside_it() {
    use std::sync::atomic::Ordering;
    let certs = crate::support::certs::Certificates::make();
    let mut spec = StandInSpec::mysql("8.4.3", &[fixture(FILE)]);
    spec.tls = Some((
        certs.path("server.pem").into(),
        certs.path("server.key").into(),
    ));
    let standin = MySqlStandIn::start(spec);
    let ca = certs.path("ca.pem");

    // Verified TLS: capture equals replay; the first login's full path sent the password
    // inside TLS, not RSA-encrypted.
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source_at(standin.port, "binlake", "STANDIN_PASSWORD", 4997)
        .source_keys(&format!("tls = \"verify_identity\"\ntls_ca = \"{ca}\""))
        .ndjson("out.ndjson")
        .write(dir.path(), "source.toml");
    let (code, _, stderr) = binlake_with_password(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let expected: Vec<Value> = replay_ok(FILE).iter().map(essence).collect();
    let events: Vec<Value> = captured(dir.path());
    assert_eq!(events, expected);
    assert_eq!(standin.auth.full.load(Ordering::Relaxed), 1);
    assert!(standin.auth.fast.load(Ordering::Relaxed) >= 1);

    let (code, stdout, stderr) = check_with(
        standin.port,
        "127.0.0.1",
        &format!("tls = \"verify_identity\"\ntls_ca = \"{ca}\""),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok    tls                  TLSv1.3, TLS13_"),
        "{stdout}"
    );

    // A CA that did not sign the certificate; a host name it does not hold.
    let other = certs.path("other-ca.pem");
    let (code, _, stderr) = check_with(
        standin.port,
        "127.0.0.1",
        &format!("tls = \"verify_ca\"\ntls_ca = \"{other}\""),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("TLS certificate not trusted"), "{stderr}");
    let (code, _, stderr) = check_with(
        standin.port,
        "localhost",
        &format!("tls = \"verify_identity\"\ntls_ca = \"{ca}\""),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("TLS host name mismatch"), "{stderr}");

    // A MySQL without TLS and tls = "required".
    let plain = MySqlStandIn::start(StandInSpec::mysql("8.4.3", &[fixture(FILE)]));
    let (code, _, stderr) = check_with(plain.port, "127.0.0.1", "tls = \"required\"");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the server offers no TLS"), "{stderr}");
}

#[test]
fn sigkill_mid_stream_then_resume_by_gtid_loses_nothing_and_repeats_only_positions() {
    let file = fixture(FILE);
    let mut spec = StandInSpec::mysql("8.4.3", std::slice::from_ref(&file));
    // The second transaction commits 3 s after the first.
    spec.pace = Some(std::time::Duration::from_secs(3));
    let standin = MySqlStandIn::start(spec);
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source_at(standin.port, "binlake", "STANDIN_PASSWORD", 4998)
        .source_keys("resume_by = \"gtid\"")
        .ndjson("out.ndjson")
        .write(dir.path(), "source.toml");
    let mut source = crate::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args(["source", "--config"])
            .arg(&config)
            .env("STANDIN_PASSWORD", "s3cret")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Killed once the first transaction is checkpointed, before the second arrives.
    crate::support::wait_for(
        "the first transaction's checkpoint",
        std::time::Duration::from_secs(20),
        || {
            crate::read_checkpoint(dir.path())
                .and_then(|c| c["gtid"].as_str().map(|g| !g.is_empty()))
                .unwrap_or(false)
        },
    );
    source.kill().unwrap();
    source.wait().unwrap();
    let (code, _, stderr) = binlake_with_password(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("by_gtid=true"), "{stderr}");

    // A change written after the last checkpoint may come again, at the same position; folded
    // by position, the output is the file's changes exactly.
    let mut seen = std::collections::BTreeMap::new();
    for e in captured(dir.path()) {
        let at = (
            e["file"].as_str().unwrap().to_string(),
            e["pos"].as_u64().unwrap(),
            e["row"].as_u64().unwrap(),
            e["op"].as_str().unwrap().to_string(),
        );
        if let Some(earlier) = seen.insert(at.clone(), e.clone()) {
            assert_eq!(earlier, e, "a repeat at {at:?} is the same change");
        }
    }
    let folded: Vec<Value> = seen.into_values().collect();
    let mut expected: Vec<Value> = replay_ok(FILE).iter().map(essence).collect();
    expected.sort_by_key(|e| {
        (
            e["file"].as_str().unwrap().to_string(),
            e["pos"].as_u64().unwrap(),
            e["row"].as_u64().unwrap(),
            e["op"].as_str().unwrap().to_string(),
        )
    });
    assert_eq!(folded, expected);
}
