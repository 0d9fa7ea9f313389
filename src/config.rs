//! The TOML configuration: parsing, `${ENV}` interpolation of secrets, and validation whose
//! errors name the file and the key. Each stage's settings live in its own table
//! (`[source]`, `[transport]`, ...).

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("config {file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
    #[error(
        "config {file}: key `{key}` uses ${{{var}}}, but the environment variable {var} is not set"
    )]
    MissingEnv {
        file: String,
        key: String,
        var: String,
    },
}

/// Where the first start of a source begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// A consistent image of every included table first, then the binlog from that point.
    #[default]
    Initial,
    /// No image: stream from the oldest binlog the server still has.
    Never,
    /// The image only, then stop.
    Only,
}

/// How a restarted source finds its place in the binlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResumeBy {
    /// The binlog file and offset of the checkpoint (same server).
    #[default]
    Position,
    /// The GTID state of the checkpoint (survives a failover to another server).
    Gtid,
}

/// `[source]`: the MySQL/MariaDB server and what to capture from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `mysql://user@host:port`; the password comes from `password` (use `${ENV}`), or from the
    /// URL itself.
    pub url: String,
    #[serde(default)]
    pub password: Option<String>,
    /// The replica server id binlake registers with; unique among the server's replicas.
    pub server_id: u32,
    /// `db.table` globs to capture; empty means every table outside the system schemas.
    #[serde(default)]
    pub include: Vec<String>,
    /// `db.table` globs to leave out, applied after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Where positions and schema history are kept: a directory path.
    pub checkpoint: PathBuf,
    #[serde(default)]
    pub resume_by: ResumeBy,
    /// Seconds between the server's heartbeats while the binlog is idle.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// Seconds without any event (heartbeats included) after which the connection is
    /// considered dead and re-established.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_secs: u64,
    /// Seconds for connecting and for each query.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Rows per snapshot chunk (one SELECT ordered by primary key).
    #[serde(default = "default_chunk_rows")]
    pub snapshot_chunk_rows: u64,
}

fn default_heartbeat() -> u64 {
    5
}
fn default_read_timeout() -> u64 {
    30
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_chunk_rows() -> u64 {
    50_000
}

/// `[transport]`: how change events leave the source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    pub kind: TransportKind,
    /// For `ndjson`: the file change events are appended to; `-` is stdout.
    #[serde(default)]
    pub path: Option<String>,
    /// The logical server name: `source.name` in events, the topic prefix in Kafka.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Kafka: `host:port[,host:port...]`.
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    /// Kafka: the sink's consumer group.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Kafka: partitions of topics binlake creates.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Kafka: replication factor of topics binlake creates.
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// Kafka: `none`, `gzip`, `snappy`, `lz4`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Kafka: a tombstone (key, no value) after each delete, as Debezium's
    /// `tombstones.on.delete`.
    #[serde(default = "default_true")]
    pub tombstones_on_delete: bool,
    /// Kafka: BEGIN/END records on `<topic_prefix>.transaction`.
    #[serde(default)]
    pub transaction_topic: bool,
    /// Kafka: heartbeat messages on `__debezium-heartbeat.<topic_prefix>` while idle.
    #[serde(default)]
    pub heartbeats: bool,
    /// Kafka: settings passed to librdkafka as they are (`security.protocol`, `sasl.*`, ...).
    #[serde(default)]
    pub librdkafka: std::collections::BTreeMap<String, String>,
}

fn default_partitions() -> i32 {
    1
}
fn default_replication() -> i32 {
    1
}
fn default_compression() -> String {
    "lz4".into()
}
fn default_true() -> bool {
    true
}

fn default_topic_prefix() -> String {
    "binlake".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Debezium JSON lines appended to a file (fsynced before each checkpoint).
    Ndjson,
    Kafka,
    Embedded,
}

/// `[lake]`: where the Delta tables live and how often they are committed and maintained.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// A path, `file:///...`, `az://container/path`, `abfss://container@account.dfs.core.windows.net/path`
    /// or `https://account.blob.core.windows.net/container/path`.
    pub url: String,
    /// Passed to object_store: `account_name`, `account_key` / `sas_token` (use `${ENV}`),
    /// `use_emulator`, ...
    #[serde(default)]
    pub storage: std::collections::BTreeMap<String, String>,
    /// A batch is committed when it holds this many records...
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// ...or when its first record is this old.
    #[serde(default = "default_max_latency_ms")]
    pub max_latency_ms: u64,
    /// Compact a table's small files every this many commits to it; 0 never.
    #[serde(default = "default_optimize_every")]
    pub optimize_every_commits: u64,
    /// Delete unreferenced files every this many commits to a table; 0 never.
    #[serde(default = "default_vacuum_every")]
    pub vacuum_every_commits: u64,
    /// Files a vacuum keeps for readers of older versions.
    #[serde(default = "default_vacuum_retention")]
    pub vacuum_retention_hours: u64,
    /// A Delta checkpoint every this many table versions.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// How silver drops the rows a batch replaces or deletes.
    #[serde(default)]
    pub silver_deletes: SilverDeletes,
}

/// `[lake] silver_deletes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilverDeletes {
    /// Mark them in a deletion vector; only the new rows are written.
    #[default]
    DeletionVectors,
    /// Rewrite every file that holds one (a Delta MERGE); readers need no deletion-vector
    /// support (e.g. Python `deltalake`'s `to_pandas()`).
    CopyOnWrite,
}

fn default_max_rows() -> usize {
    50_000
}
fn default_max_latency_ms() -> u64 {
    1000
}
fn default_optimize_every() -> u64 {
    100
}
fn default_vacuum_every() -> u64 {
    500
}
fn default_vacuum_retention() -> u64 {
    168
}
fn default_checkpoint_interval() -> u64 {
    100
}

impl LakeConfig {
    pub fn settings(&self) -> crate::lake::writer::LakeSettings {
        crate::lake::writer::LakeSettings {
            max_rows: self.max_rows,
            max_latency: std::time::Duration::from_millis(self.max_latency_ms),
            optimize_every_commits: self.optimize_every_commits,
            vacuum_every_commits: self.vacuum_every_commits,
            vacuum_retention: std::time::Duration::from_secs(self.vacuum_retention_hours * 3600),
            checkpoint_interval: self.checkpoint_interval,
            deletion_vectors: self.silver_deletes == SilverDeletes::DeletionVectors,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to serve `GET /metrics` on, e.g. `127.0.0.1:9187`.
    pub listen: String,
}

/// `[gold]`: SQL models over silver, materialized as `gold/<model>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldConfig {
    /// A folder of `<model>.sql` files (relative to the config's folder).
    pub models: PathBuf,
    /// `"on_commit"`: after each batch the sink commits; or an interval: `"30s"`, `"5m"`, `"1h"`.
    #[serde(default = "default_refresh")]
    pub refresh: String,
}

fn default_refresh() -> String {
    "on_commit".into()
}

/// When gold models are refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoldRefresh {
    OnCommit,
    Every(std::time::Duration),
}

impl GoldConfig {
    pub fn refresh_policy(&self) -> Result<GoldRefresh, String> {
        let r = self.refresh.trim();
        if r == "on_commit" {
            return Ok(GoldRefresh::OnCommit);
        }
        let (number, unit) = r.split_at(r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len()));
        let n: u64 = number.parse().map_err(|_| {
            format!("{r:?}: use \"on_commit\" or an interval like \"30s\", \"5m\", \"1h\"")
        })?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => return Err(format!("{r:?}: the unit must be s, m or h")),
        };
        if secs == 0 {
            return Err(format!("{r:?}: the interval must be positive"));
        }
        Ok(GoldRefresh::Every(std::time::Duration::from_secs(secs)))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Needed by `source`, `run` and `check`; a sink-only config may leave it out.
    #[serde(default)]
    pub source: Option<SourceConfig>,
    pub transport: TransportConfig,
    /// Needed by `sink` and `run`.
    #[serde(default)]
    pub lake: Option<LakeConfig>,
    #[serde(default)]
    pub gold: Option<GoldConfig>,
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// The folder of the config file, which relative paths are resolved against.
    #[serde(skip)]
    pub base: PathBuf,
    #[serde(skip)]
    pub file: String,
}

/// Replaces `${NAME}` with the environment variable NAME in every string of the TOML tree;
/// `$${` is a literal `${`.
fn interpolate(
    value: &mut toml::Value,
    key: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => {
            if !s.contains("${") {
                return Ok(());
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                if i > 0 && rest[..i].ends_with('$') {
                    out.push_str(&rest[..i - 1]);
                    out.push_str("${");
                    rest = &rest[i + 2..];
                    continue;
                }
                out.push_str(&rest[..i]);
                let Some(end) = rest[i..].find('}') else {
                    return Err(ConfigError::Invalid {
                        file: file.into(),
                        key: key.into(),
                        reason: "unterminated ${".into(),
                    });
                };
                let var = &rest[i + 2..i + end];
                let v = env(var).ok_or_else(|| ConfigError::MissingEnv {
                    file: file.into(),
                    key: key.into(),
                    var: var.into(),
                })?;
                out.push_str(&v);
                rest = &rest[i + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let child = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                interpolate(v, &child, file, env)?;
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                interpolate(v, &format!("{key}[{i}]"), file, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file, base, &|v| std::env::var(v).ok())
    }

    /// Parses config text; relative paths are resolved against `base` (the config's folder).
    pub fn parse(
        text: &str,
        file: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.into(),
            reason: e.to_string(),
        })?;
        interpolate(&mut value, "", file, env)?;
        let mut config: Config =
            value
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    file: file.into(),
                    reason: e.to_string(),
                })?;
        if let Some(source) = &mut config.source {
            if source.checkpoint.is_relative() {
                source.checkpoint = base.join(&source.checkpoint);
            }
        }
        if let Some(gold) = &mut config.gold {
            if gold.models.is_relative() {
                gold.models = base.join(&gold.models);
            }
        }
        config.base = base.to_path_buf();
        config.file = file.to_string();
        if let Some(path) = &config.transport.path {
            if path != "-" && Path::new(path).is_relative() {
                config.transport.path = Some(base.join(path).display().to_string());
            }
        }
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason,
        };
        if let Some(source) = &self.source {
            self.validate_source(source, file)?;
        }
        if let Some(gold) = &self.gold {
            gold.refresh_policy()
                .map_err(|r| invalid("gold.refresh", r))?;
        }
        if let Some(lake) = &self.lake {
            if lake.max_rows == 0 {
                return Err(invalid("lake.max_rows", "must be at least 1".into()));
            }
            if lake.max_latency_ms == 0 {
                return Err(invalid("lake.max_latency_ms", "must be at least 1".into()));
            }
        }
        if self.transport.kind == TransportKind::Kafka && self.transport.bootstrap_servers.is_none()
        {
            return Err(invalid(
                "transport.bootstrap_servers",
                "the kafka transport needs the brokers, host:port[,host:port...]".into(),
            ));
        }
        if !["none", "gzip", "snappy", "lz4"].contains(&self.transport.compression.as_str()) {
            return Err(invalid(
                "transport.compression",
                format!(
                    "{:?}: use none, gzip, snappy or lz4",
                    self.transport.compression
                ),
            ));
        }
        if self.transport.partitions < 1 {
            return Err(invalid("transport.partitions", "must be at least 1".into()));
        }
        if self.transport.kind == TransportKind::Ndjson && self.transport.path.is_none() {
            return Err(invalid(
                "transport.path",
                "the ndjson transport needs a file to append to (or \"-\" for stdout)".into(),
            ));
        }
        Ok(())
    }

    /// `[source]`, which `command` needs.
    pub fn source(&self, command: &str) -> Result<&SourceConfig, ConfigError> {
        self.source.as_ref().ok_or_else(|| ConfigError::Invalid {
            file: self.file.clone(),
            key: "source".into(),
            reason: format!("`binlake {command}` needs a [source] table"),
        })
    }

    /// `[lake]`, which `command` needs.
    pub fn lake(&self, command: &str) -> Result<&LakeConfig, ConfigError> {
        self.lake.as_ref().ok_or_else(|| ConfigError::Invalid {
            file: self.file.clone(),
            key: "lake".into(),
            reason: format!("`binlake {command}` needs a [lake] table with at least `url`"),
        })
    }

    /// The group the sink consumes in: `group_id`, or `binlake-<topic_prefix>`.
    pub fn group_id(&self) -> String {
        self.transport
            .group_id
            .clone()
            .unwrap_or_else(|| format!("binlake-{}", self.transport.topic_prefix))
    }

    fn validate_source(&self, source: &SourceConfig, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason,
        };
        SourceUrl::parse(&source.url).map_err(|r| invalid("source.url", r))?;
        if source.server_id == 0 {
            return Err(invalid(
                "source.server_id",
                "must be a non-zero id unique among the server's replicas".into(),
            ));
        }
        for (key, globs) in [
            ("source.include", &source.include),
            ("source.exclude", &source.exclude),
        ] {
            for g in globs {
                if !g.contains('.') {
                    return Err(invalid(key, format!("{g:?} is not a `db.table` glob")));
                }
                globset::Glob::new(g).map_err(|e| invalid(key, format!("{g:?}: {e}")))?;
            }
        }
        if source.heartbeat_secs == 0 || source.read_timeout_secs <= source.heartbeat_secs {
            return Err(invalid(
                "source.read_timeout_secs",
                format!(
                    "must be longer than source.heartbeat_secs ({}), or an idle binlog looks like a dead connection",
                    source.heartbeat_secs
                ),
            ));
        }
        Ok(())
    }
}

/// `mysql://user[:password]@host[:port]` split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
}

impl SourceUrl {
    pub fn parse(url: &str) -> Result<SourceUrl, String> {
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .ok_or_else(|| format!("{url:?} must start with mysql://"))?;
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = rest
            .rsplit_once('@')
            .ok_or_else(|| "must name a user: mysql://user@host:port".to_string())?;
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(p.to_string())),
            None => (auth.to_string(), None),
        };
        if user.is_empty() {
            return Err("the user is empty".into());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| format!("port {p:?} is not a number"))?,
            ),
            None => (hostport.to_string(), 3306),
        };
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        Ok(SourceUrl {
            user,
            password,
            host,
            port,
        })
    }
}

/// Which tables a source captures: `include` globs (all non-system tables when empty) minus
/// `exclude` globs, matched against `db.table`.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Option<globset::GlobSet>,
    exclude: globset::GlobSet,
}

const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

impl TableFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<TableFilter, String> {
        let build = |globs: &[String]| {
            let mut b = globset::GlobSetBuilder::new();
            for g in globs {
                b.add(
                    globset::GlobBuilder::new(g)
                        .literal_separator(false)
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            b.build().map_err(|e| e.to_string())
        };
        Ok(TableFilter {
            include: if include.is_empty() {
                None
            } else {
                Some(build(include)?)
            },
            exclude: build(exclude)?,
        })
    }

    pub fn matches(&self, db: &str, table: &str) -> bool {
        let name = format!("{db}.{table}");
        let included = match &self.include {
            Some(set) => set.is_match(&name),
            None => !SYSTEM_SCHEMAS.contains(&db.to_ascii_lowercase().as_str()),
        };
        included && !self.exclude.is_match(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[source]
url = "mysql://binlake@127.0.0.1:3306"
password = "${DB_PASSWORD}"
server_id = 4242
include = ["shop.*"]
exclude = ["shop.tmp_*"]
checkpoint = "state"

[transport]
kind = "ndjson"
path = "-"
"#;

    fn env(v: &str) -> Option<String> {
        (v == "DB_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn parses_interpolates_and_resolves_paths() {
        let c = Config::parse(MINIMAL, "c.toml", Path::new("/etc/binlake"), &env).unwrap();
        assert_eq!(
            c.source.as_ref().unwrap().password.as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            c.source.as_ref().unwrap().checkpoint,
            PathBuf::from("/etc/binlake/state")
        );
        assert_eq!(c.transport.path.as_deref(), Some("-"));
        assert_eq!(c.source.as_ref().unwrap().snapshot, SnapshotMode::Initial);
        assert_eq!(c.source.as_ref().unwrap().heartbeat_secs, 5);
        assert_eq!(c.transport.topic_prefix, "binlake");
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = Config::parse(MINIMAL, "c.toml", Path::new("."), &|_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config c.toml: key `source.password` uses ${DB_PASSWORD}, but the environment variable DB_PASSWORD is not set"
        );
        let bad = MINIMAL.replace("server_id = 4242", "server_id = 0");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config c.toml: key `source.server_id`:"),
            "{err}"
        );
        let bad = MINIMAL.replace("mysql://binlake@", "http://binlake@");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(err.to_string().contains("key `source.url`"), "{err}");
        let bad = MINIMAL.replace(
            "server_id = 4242",
            "server_id = 4242\nsnapshot = \"sometimes\"",
        );
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let bad = MINIMAL.replace("server_id = 4242", "server_id = 4242\nserverid = 1");
        let err = Config::parse(&bad, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(err.to_string().contains("serverid"), "{err}");
    }

    #[test]
    fn shipped_connector_configs_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors/quickstart.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.source.as_ref().unwrap().server_id, 5401);
        assert_eq!(c.source.as_ref().unwrap().include, ["online_store.*"]);
        assert_eq!(c.transport.kind, TransportKind::Embedded);
        assert!(c
            .source
            .as_ref()
            .unwrap()
            .checkpoint
            .ends_with(".services/quickstart-state"));
        assert!(c.lake.unwrap().url.ends_with("quickstart-lake"));

        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors/ecommerce.toml");
        let env = |v: &str| (v == "BINLAKE_MYSQL_PASSWORD").then(|| "pw".to_string());
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::parse(&text, "ecommerce.toml", path.parent().unwrap(), &env).unwrap();
        assert_eq!(c.transport.kind, TransportKind::Kafka);
        assert_eq!(c.source.as_ref().unwrap().password.as_deref(), Some("pw"));
        assert_eq!(c.lake.as_ref().unwrap().url, "az://lake/online_store");
        let gold = c.gold.unwrap();
        assert!(gold.models.ends_with("sql/gold"));
        assert_eq!(gold.refresh_policy(), Ok(GoldRefresh::OnCommit));
    }

    #[test]
    fn librdkafka_passthrough_keeps_a_literal_dollar_and_interpolates_secrets() {
        let text = format!(
            "{}\nbootstrap_servers = \"ns.servicebus.windows.net:9093\"\n[transport.librdkafka]\n\"sasl.username\" = \"$ConnectionString\"\n\"sasl.password\" = \"${{DB_PASSWORD}}\"\n",
            MINIMAL.replace("kind = \"ndjson\"\npath = \"-\"", "kind = \"kafka\"")
        );
        let c = Config::parse(&text, "c.toml", Path::new("."), &env).unwrap();
        assert_eq!(c.transport.kind, TransportKind::Kafka);
        assert_eq!(c.transport.librdkafka["sasl.username"], "$ConnectionString");
        assert_eq!(c.transport.librdkafka["sasl.password"], "s3cret");
        let no_brokers = text.replace(
            "bootstrap_servers = \"ns.servicebus.windows.net:9093\"\n",
            "",
        );
        let err = Config::parse(&no_brokers, "c.toml", Path::new("."), &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("key `transport.bootstrap_servers`"),
            "{err}"
        );
    }

    #[test]
    fn urls() {
        let u = SourceUrl::parse("mysql://repl:pw@db.internal:3307").unwrap();
        assert_eq!(
            (
                u.user.as_str(),
                u.password.as_deref(),
                u.host.as_str(),
                u.port
            ),
            ("repl", Some("pw"), "db.internal", 3307)
        );
        assert_eq!(
            SourceUrl::parse("mysql://repl@localhost").unwrap().port,
            3306
        );
        assert!(SourceUrl::parse("mysql://localhost:3306").is_err());
    }

    #[test]
    fn table_filter_globs() {
        let f = TableFilter::new(
            &["shop.*".into(), "crm.customers".into()],
            &["shop.tmp_*".into()],
        )
        .unwrap();
        assert!(f.matches("shop", "orders"));
        assert!(!f.matches("shop", "tmp_import"));
        assert!(f.matches("crm", "customers"));
        assert!(!f.matches("crm", "leads"));
        let all = TableFilter::new(&[], &[]).unwrap();
        assert!(all.matches("shop", "orders"));
        assert!(!all.matches("mysql", "user"));
    }
}
