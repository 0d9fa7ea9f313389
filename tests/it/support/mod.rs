//! Shared set-up for the integration tests: the servers a test starts and stops (MariaDB, the
//! Kafka broker), scenario configs, reading the lake back, running the binary, and the binlog
//! fixtures.

pub mod certs;
pub mod kafka;
pub mod lake;
pub mod mariadb;
pub mod mysql_standin;
pub mod scenario;

use std::path::{Path, PathBuf};

use binlake::replay::{replay_files, ReplayOptions};
use serde_json::Value;

/// Path of a file under tests/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Replays fixture binlogs through the library and returns the printed change events.
pub fn replay(rel: &[&str], options: &ReplayOptions) -> (Vec<Value>, Result<(), String>) {
    let files: Vec<PathBuf> = rel.iter().map(|r| fixture(r)).collect();
    let mut out = Vec::new();
    let result = replay_files(&files, options, &mut out)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let events = String::from_utf8(out)
        .expect("output is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect();
    (events, result)
}

/// Replays one fixture that must decode without error.
pub fn replay_ok(rel: &str) -> Vec<Value> {
    let (events, result) = replay(&[rel], &ReplayOptions::default());
    if let Err(e) = result {
        panic!("{rel}: {e}");
    }
    events
}

/// The source's checkpoint under `dir` (a config's folder, `checkpoint = "state"`), or None
/// before the first one is written. The file is replaced atomically, so it always parses.
pub fn read_checkpoint(dir: &std::path::Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("state/checkpoint.json")).ok()?;
    Some(serde_json::from_str(&text).expect("a checkpoint is always whole JSON"))
}

/// A child process killed (and reaped) when the test ends, also when it panics: every
/// process a test starts, it stops.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binlake COMMAND --config CONFIG` in the background, its stderr to `stderr`.
pub fn spawn_binlake(command: &str, config: &Path, stderr: std::process::Stdio) -> KillOnDrop {
    KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args([command, "--config"])
            .arg(config)
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}

/// SIGKILLs `process` and puts the one `start` makes in its place.
pub fn restart(process: &mut KillOnDrop, start: impl FnOnce() -> KillOnDrop) {
    process.kill().unwrap();
    process.wait().unwrap();
    *process = start();
}

/// Runs `binlake source` and then `binlake sink` with `--exit-when-caught-up`: everything the
/// server's binlog holds is in the lake when it returns.
pub fn catch_up(config: &Path) {
    for command in ["source", "sink"] {
        let (code, stderr) = binlake(&[command, "--exit-when-caught-up"], config);
        assert_eq!(code, Some(0), "{command}: {stderr}");
    }
}

/// Where a background process logs: appended to `<name>.log` under `BINLAKE_E2E_LOGS` when
/// that is set (so a failure can be read back after the test's folder is gone), else nowhere.
pub fn e2e_log(name: &str) -> std::process::Stdio {
    match std::env::var_os("BINLAKE_E2E_LOGS") {
        Some(logs) => {
            let logs = std::path::PathBuf::from(logs);
            std::fs::create_dir_all(&logs).unwrap();
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join(format!("{name}.log")))
                .unwrap()
                .into()
        }
        None => std::process::Stdio::null(),
    }
}

/// Runs `command` to its end and returns its output; panics with its stderr if it failed.
pub fn run_ok(command: &mut std::process::Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A topic prefix no other run has used (real brokers keep topics).
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("bl{name}{}x{nanos}", std::process::id())
}

/// Runs `binlake ARGS --config CONFIG` to its end: (exit code, stderr).
pub fn binlake(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = run_binlake(args, config);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`binlake`], killed and failed when it has not ended within `limit`.
pub fn binlake_within(
    args: &[&str],
    config: &Path,
    limit: std::time::Duration,
) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut child = KillOnDrop(child);
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let text = reader.join().unwrap();
    let Some(status) = status else {
        panic!("binlake {args:?} did not end within {limit:?}:\n{text}");
    };
    (status.code(), text)
}

/// Runs the binlake binary with `args --config <config>`: (exit code, stdout).
pub fn binlake_stdout(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = run_binlake(args, config);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn run_binlake(args: &[&str], config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// Waits until `done`, polling every 50 ms; fails the test after `limit`.
pub fn wait_for(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
