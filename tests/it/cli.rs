//! The `binlake` binary as users run it: exit codes, stdout for output, stderr for messages.

use std::process::Command;

use crate::fixture;

fn binlake() -> Command {
    Command::new(env!("CARGO_BIN_EXE_binlake"))
}

#[test]
fn replay_prints_ndjson_on_stdout_and_logs_on_stderr() {
    let out = binlake()
        .arg("replay")
        .arg(fixture("binlogs/mysql-8/time_issue.000001"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["op"], "c");
    // No column names anywhere: the warning goes to stderr, never into the data.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no column names for noria.t"), "{stderr}");
}

#[test]
fn replay_of_several_files_and_a_schema() {
    let out = crate::run_ok(
        binlake()
            .arg("replay")
            .arg("--schema")
            .arg(fixture("schemas/noria.sql"))
            .arg(fixture("binlogs/mysql-8/minimal_row_metadata.000001"))
            .arg(fixture("binlogs/mariadb/mariadb-10.11-gtid.000001")),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["after"]["big"], 3230202323u64);
    assert_eq!(lines[4]["source"]["file"], "mariadb-10.11-gtid.000001");
}

#[test]
fn corrupt_file_exits_non_zero_naming_file_and_offset_after_printing_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("binlogs/mariadb/mariadb-10.11-gtid.000001")).unwrap();
    // Cut inside the DELETE rows event (it starts at 1436): the first three changes decode.
    let path = dir.path().join("cut.000001");
    std::fs::write(&path, &bytes[..1470]).unwrap();
    let out = binlake().arg("replay").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 3);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cut.000001 at byte 1436: truncated DELETE_ROWS_V1 (type 25) event"),
        "{stderr}"
    );

    let out = binlake()
        .arg("replay")
        .arg(fixture("binlogs/not-a-binlog/public-key.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a binlog file"));
}

#[test]
fn missing_inputs_are_named() {
    let out = binlake()
        .args(["replay", "/nonexistent/mysql-bin.000001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/mysql-bin.000001: cannot read")
    );

    let out = binlake()
        .args(["replay", "--schema", "/nonexistent/schema.sql"])
        .arg(fixture("binlogs/mysql-8/time_issue.000001"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema file /nonexistent/schema.sql"));
}

/// The binary allocates with jemalloc and reads binlake's options for it: the thread that
/// returns freed pages to the system (`background_thread:true`, off in jemalloc's defaults)
/// runs beside the command's own.
#[cfg(all(target_os = "linux", feature = "jemalloc"))]
#[test]
fn the_binary_runs_on_jemalloc_with_binlakes_options() {
    use std::io::BufRead;
    let mut mock = crate::support::KillOnDrop(
        binlake()
            .args(["bench", "mock-kafka"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The cluster's address on stdout: the process is up and has allocated.
    let mut address = String::new();
    std::io::BufReader::new(mock.0.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    assert!(address.contains("127.0.0.1:"), "{address}");
    // Threads come and go while the directory is read: a vanished one is skipped.
    let threads = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", mock.0.id()))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect()
    };
    let mut seen = threads();
    for _ in 0..50 {
        if seen.iter().any(|t| t == "jemalloc_bg_thd") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen = threads();
    }
    assert!(seen.iter().any(|t| t == "jemalloc_bg_thd"), "{seen:?}");
}
