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
        use std::io::Write;
        let mut child = Command::new("bash")
            .arg(script())
            .args([
                "sql",
                self.dir.path().to_str().unwrap(),
                "-N",
                "-B",
                "--raw",
            ])
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
