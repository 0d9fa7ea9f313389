//! Scenario configs: the TOML file a test hands the binary, built from the parts it needs
//! (`[source]` on the test's MariaDB, a transport, a lake, any other section), so the keys every
//! test shares are written once.

use std::path::{Path, PathBuf};

use super::kafka::Broker;
use super::mariadb::MariaDb;

/// A config file under construction.
pub struct Scenario {
    source: Option<String>,
    snapshot: &'static str,
    transport: String,
    lake: Option<String>,
    sections: Vec<String>,
}

impl Scenario {
    /// `[source]` on `db` as replica `server_id`: streaming from the oldest binlog (no
    /// snapshot; see [`Scenario::snapshot`]), the checkpoint in `state/` beside the config,
    /// 1 s heartbeats and a 3 s read timeout, so tests notice a dead connection quickly.
    pub fn source(db: &MariaDb, server_id: u32) -> Scenario {
        Scenario {
            source: Some(format!(
                "url = \"mysql://root@127.0.0.1:{port}\"\nserver_id = {server_id}\ncheckpoint = \"state\"\nheartbeat_secs = 1\nread_timeout_secs = 3\n",
                port = db.port
            )),
            snapshot: "never",
            transport: String::new(),
            lake: None,
            sections: Vec::new(),
        }
    }

    /// `snapshot = MODE` (`initial`, `never`, `only`).
    pub fn snapshot(mut self, mode: &'static str) -> Scenario {
        self.snapshot = mode;
        self
    }

    /// `[source]` as [`Scenario::source`], on a server at `127.0.0.1:port` as `user`, whose
    /// password comes from the environment variable `password_env`.
    pub fn source_at(port: u16, user: &str, password_env: &str, server_id: u32) -> Scenario {
        Scenario {
            source: Some(format!(
                "url = \"mysql://{user}@127.0.0.1:{port}\"\npassword = \"${{{password_env}}}\"\nserver_id = {server_id}\ncheckpoint = \"state\"\nheartbeat_secs = 1\nread_timeout_secs = 3\n"
            )),
            snapshot: "never",
            transport: String::new(),
            lake: None,
            sections: Vec::new(),
        }
    }

    /// Only the tables `glob` (`db.table`) matches.
    pub fn include(self, glob: &str) -> Scenario {
        self.source_keys(&format!("include = [\"{glob}\"]"))
    }

    /// More `[source]` keys, as TOML lines.
    pub fn source_keys(mut self, keys: &str) -> Scenario {
        if let Some(s) = &mut self.source {
            s.push_str(keys);
            s.push('\n');
        }
        self
    }

    /// `[transport]` as TOML lines (`kind = ...` and its keys).
    pub fn transport(mut self, keys: &str) -> Scenario {
        self.transport = keys.to_string();
        self
    }

    /// Kafka on `broker` under topic prefix `prefix`, plus `keys`.
    pub fn kafka(self, broker: &Broker, prefix: &str, keys: &str) -> Scenario {
        self.transport(&format!(
            "kind = \"kafka\"\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{prefix}\"\n{keys}",
            broker.bootstrap
        ))
    }

    /// NDJSON lines appended to `path` (relative to the config).
    pub fn ndjson(self, path: &str) -> Scenario {
        self.transport(&format!("kind = \"ndjson\"\npath = \"{path}\""))
    }

    /// `[lake]` keys (`url = ...` among them).
    pub fn lake(mut self, keys: &str) -> Scenario {
        self.lake = Some(keys.to_string());
        self
    }

    /// The embedded transport and a lake in `lake/` beside the config, committed every 200 ms.
    pub fn embedded_lake(self) -> Scenario {
        self.transport("kind = \"embedded\"")
            .lake("max_latency_ms = 200\nurl = \"lake\"")
    }

    /// Any other section (or keys after `[transport]`, e.g. `[transport.librdkafka]`), as is.
    pub fn section(mut self, text: &str) -> Scenario {
        self.sections.push(text.to_string());
        self
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.source {
            out.push_str("[source]\n");
            out.push_str(s);
            out.push_str(&format!("snapshot = \"{}\"\n", self.snapshot));
            out.push('\n');
        }
        out.push_str("[transport]\n");
        out.push_str(&self.transport);
        out.push_str("\n\n");
        if let Some(l) = &self.lake {
            out.push_str("[lake]\n");
            out.push_str(l);
            out.push_str("\n\n");
        }
        for s in &self.sections {
            out.push_str(s);
            out.push('\n');
        }
        out
    }

    /// Writes the config as `dir/name`; returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, super::kafka::for_the_broker(&self.text())).unwrap();
        path
    }
}
