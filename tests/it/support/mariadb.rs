//! A private MariaDB server for a test, started with scripts/mariadb.sh on a free loopback port
//! and stopped when the guard drops.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct MariaDb {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mariadb.sh")
}

/// scripts/mariadb.sh start, failing the test with the server's own words.
fn run_start(dir: &Path, port: u16, options: &[&str]) {
    let out = Command::new("bash")
        .arg(script())
        .args(["start", dir.to_str().unwrap(), &port.to_string()])
        .args(options)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "starting MariaDB failed (run scripts/test.sh, which installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl MariaDb {
    /// Starts a fresh server; fails the test with the reason when MariaDB is not installed
    /// (scripts/test.sh installs it).
    pub fn start() -> MariaDb {
        Self::start_with(&[])
    }

    /// Starts a server with extra mariadbd options (later options win over the defaults).
    pub fn start_with(options: &[&str]) -> MariaDb {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        run_start(dir.path(), port, options);
        MariaDb { dir, port }
    }

    /// Stops the server and starts it again on the same datadir and port.
    pub fn restart(&self) {
        let dir = self.dir.path().to_str().unwrap();
        let stop = Command::new("bash")
            .arg(script())
            .args(["stop", dir])
            .status()
            .unwrap();
        assert!(stop.success());
        run_start(self.dir.path(), self.port, &[]);
    }

    /// Feeds `script` to a client in the background, as a concurrent writer.
    pub fn spawn_writer(&self, script: String) -> std::thread::JoinHandle<()> {
        let dir = self.dir.path().to_path_buf();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut child = Command::new("bash")
                .arg(self::script())
                .arg("sql")
                .arg(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            assert!(
                child.wait().unwrap().success(),
                "the background writer's SQL failed"
            );
        })
    }

    /// Samples the server's processlist every 100 ms until [`LockWatch::finish`], keeping every
    /// session that waits for a lock (global read lock, metadata or table locks) or runs
    /// FLUSH TABLES / LOCK TABLES.
    pub fn watch_locks(&self) -> LockWatch {
        let dir = self.dir.path().to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let db = MariaDbClient { dir };
            let (mut samples, mut seen) = (0usize, Vec::new());
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let out = db.run(
                    "SELECT CONCAT(COALESCE(STATE,''), ' | ', LEFT(COALESCE(INFO,''), 100)) \
                     FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND \
                     (STATE LIKE 'Waiting for%lock%' OR INFO LIKE 'FLUSH TABLES%' OR INFO LIKE 'LOCK TABLE%')",
                );
                samples += 1;
                seen.extend(out.lines().map(str::to_string));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            (samples, seen)
        });
        LockWatch { stop, thread }
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs SQL through the mariadb client; returns stdout (batch mode, no headers, raw).
    pub fn sql(&self, sql: &str) -> String {
        self.run_client(sql.as_bytes())
    }

    pub fn sql_file(&self, path: &Path) -> String {
        self.run_client(&std::fs::read(path).unwrap())
    }

    fn run_client(&self, input: &[u8]) -> String {
        MariaDbClient {
            dir: self.dir.path().to_path_buf(),
        }
        .run_bytes(input)
    }
    /// The server's binlog files, oldest first, after closing the current one.
    pub fn binlogs(&self) -> Vec<PathBuf> {
        self.sql("FLUSH BINARY LOGS");
        let mut files: Vec<PathBuf> = self
            .sql("SHOW BINARY LOGS")
            .lines()
            .filter_map(|l| l.split('\t').next())
            .map(|name| self.datadir().join(name))
            .collect();
        files.sort();
        files
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

/// A client of a test server, usable from another thread.
struct MariaDbClient {
    dir: PathBuf,
}

impl MariaDbClient {
    fn run(&self, sql: &str) -> String {
        self.run_bytes(sql.as_bytes())
    }

    fn run_bytes(&self, input: &[u8]) -> String {
        use std::io::Write;
        let mut child = Command::new("bash")
            .arg(script())
            .args(["sql", self.dir.to_str().unwrap(), "-N", "-B", "--raw"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "SQL failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// What [`MariaDb::watch_locks`] saw.
pub struct LockWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl LockWatch {
    /// Stops sampling: how many samples were taken, and every lock wait or locking statement.
    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
