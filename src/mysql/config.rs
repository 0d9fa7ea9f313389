//! `[source]`: the MySQL/MariaDB server, what to capture from it and how; the `mysql://` URL
//! and the `include`/`exclude` table filter. Validated here; the live source reads it as it is.

use std::path::PathBuf;

use serde::Deserialize;

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
    /// How each snapshot chunk's place in the binlog is found.
    #[serde(default)]
    pub snapshot_positions: SnapshotPositions,
    /// Whether the snapshot may take MySQL's global read lock (`"global"`: the old way, for
    /// servers where the watermark table cannot be written).
    #[serde(default)]
    pub snapshot_locking: SnapshotLocking,
    /// `db.table` the watermark snapshot writes its watermarks to (created when missing; the
    /// user needs CREATE, INSERT and DELETE on it).
    #[serde(default = "default_watermark_table")]
    pub watermark_table: String,
    /// `db.table` of the signal table `binlake snapshot` writes requests to (Debezium's
    /// signalling table: `id`, `type`, `data`); created by `binlake snapshot` when missing.
    #[serde(default = "default_signal_table")]
    pub signal_table: String,
    /// TLS to the server, as the MySQL client's `--ssl-mode`.
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file of the CA(s) that sign the server's certificate (`verify_ca`,
    /// `verify_identity`); without it, the public web roots.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate (chain), for servers that require one (`REQUIRE X509`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// `db.table.column`s whose values never leave the database host: dropped from every
    /// change and from the published schema.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// `db.table.column` → method (`"sha256"`): the value is replaced by the hex SHA-256 of
    /// `mask_salt` and the value before it leaves the host.
    #[serde(default)]
    pub mask_columns: std::collections::BTreeMap<String, String>,
    /// The secret the masks are keyed with (use `${ENV}`); required with `mask_columns`.
    #[serde(default)]
    pub mask_salt: Option<String>,
    /// `db.table` → the columns that key its changes (Kafka message key, silver's merge key),
    /// whatever its primary key: for tables without one (Debezium's `message.key.columns`).
    #[serde(default)]
    pub key_columns: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[source] snapshot_positions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotPositions {
    /// MariaDB: the server's own (`server`); MySQL: `watermark`, or with
    /// `snapshot_locking = "global"` a position read under the lock.
    #[default]
    Auto,
    /// The position the server reports for a consistent read: MariaDB's
    /// `binlog_snapshot_position`; on MySQL only under the global read lock.
    Server,
    /// Low and high watermarks written to `watermark_table` around each chunk's read and
    /// reconciled with the binlog stream (DBLog): no lock, on any server.
    Watermark,
    /// No lock and no writes: each chunk's read is placed in the stream by what it saw, the
    /// executed GTID set (MySQL, needs `gtid_mode = ON`) or the binlog position MariaDB
    /// reports for it. For servers where the watermark table cannot be written.
    ReadOnly,
}

/// `[source] snapshot_locking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotLocking {
    /// Never a global lock.
    #[default]
    None,
    /// MySQL: a brief `FLUSH TABLES WITH READ LOCK` per chunk to read its position (needs
    /// RELOAD; managed services do not grant it).
    Global,
}

fn default_watermark_table() -> String {
    "binlake.watermarks".into()
}

fn default_signal_table() -> String {
    "binlake.signals".into()
}

impl SourceConfig {
    /// Whether the snapshot on a server of `flavor` uses watermarks.
    pub fn uses_watermarks(&self, mariadb: bool) -> bool {
        match self.snapshot_positions {
            SnapshotPositions::Watermark => true,
            SnapshotPositions::Server | SnapshotPositions::ReadOnly => false,
            SnapshotPositions::Auto => !mariadb && self.snapshot_locking == SnapshotLocking::None,
        }
    }

    /// The column rules, for the source's output.
    pub fn column_policy(&self) -> super::column_policy::ColumnPolicy {
        let masked: Vec<String> = self.mask_columns.keys().cloned().collect();
        super::column_policy::ColumnPolicy::new(
            &self.exclude_columns,
            &masked,
            self.mask_salt.as_deref().unwrap_or_default(),
        )
        .with_key_columns(&self.key_columns)
    }

    /// The signal table.
    pub fn signal_table_id(&self) -> crate::event::TableId {
        let (db, table) = self
            .signal_table
            .split_once('.')
            .unwrap_or(("binlake", "signals"));
        crate::event::TableId::new(db, table)
    }

    /// The watermark table as (db, table).
    pub fn watermark_table_id(&self) -> (String, String) {
        let (db, table) = self
            .watermark_table
            .split_once('.')
            .unwrap_or(("binlake", "watermarks"));
        (db.to_string(), table.to_string())
    }
}

/// `[source] tls`: the MySQL client's `--ssl-mode`, with its meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, plain TCP when it does not; the certificate is not
    /// checked.
    #[default]
    Preferred,
    /// TLS or no connection; the certificate is not checked.
    Required,
    /// TLS with a certificate signed by `tls_ca` (or a public root); any host name.
    VerifyCa,
    /// As `verify_ca`, and the certificate must name the host binlake connects to.
    VerifyIdentity,
}

impl TlsMode {
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Preferred => "preferred",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        }
    }
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

impl SourceConfig {
    /// Checks the values serde cannot; the error is (key, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let source = self;
        let invalid = |key: &'static str, reason: String| (key, reason);
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
        for (key, column) in source
            .exclude_columns
            .iter()
            .map(|c| ("source.exclude_columns", c))
            .chain(
                source
                    .mask_columns
                    .keys()
                    .map(|c| ("source.mask_columns", c)),
            )
        {
            if column.split('.').count() != 3 || column.split('.').any(str::is_empty) {
                return Err(invalid(key, format!("{column:?} is not `db.table.column`")));
            }
        }
        for (table, columns) in &source.key_columns {
            if table.split('.').count() != 2 || table.split('.').any(str::is_empty) {
                return Err(invalid(
                    "source.key_columns",
                    format!("{table:?} is not `db.table`"),
                ));
            }
            if columns.is_empty() {
                return Err(invalid(
                    "source.key_columns",
                    format!("{table:?}: name at least one column"),
                ));
            }
        }
        for (column, method) in &source.mask_columns {
            if !super::column_policy::MASK_METHODS.contains(&method.as_str()) {
                return Err(invalid(
                    "source.mask_columns",
                    format!(
                        "{column:?} = {method:?}: the methods are {}",
                        super::column_policy::MASK_METHODS.join(", ")
                    ),
                ));
            }
        }
        if !source.mask_columns.is_empty() && source.mask_salt.as_deref().is_none_or(str::is_empty)
        {
            return Err(invalid(
                "source.mask_salt",
                "mask_columns needs a secret salt (mask_salt = \"${BINLAKE_MASK_SALT}\"): an unsalted hash of an e-mail address is found by hashing candidates".into(),
            ));
        }
        match source.signal_table.split_once('.') {
            Some((db, table)) if !db.is_empty() && !table.is_empty() && !table.contains('.') => {}
            _ => {
                return Err(invalid(
                    "source.signal_table",
                    format!("{:?} is not `db.table`", source.signal_table),
                ))
            }
        }
        match source.watermark_table.split_once('.') {
            Some((db, table)) if !db.is_empty() && !table.is_empty() && !table.contains('.') => {}
            _ => {
                return Err(invalid(
                    "source.watermark_table",
                    format!("{:?} is not `db.table`", source.watermark_table),
                ))
            }
        }
        if source.tls_cert.is_some() != source.tls_key.is_some() {
            return Err(invalid(
                if source.tls_cert.is_some() {
                    "source.tls_key"
                } else {
                    "source.tls_cert"
                },
                "a client certificate needs both `tls_cert` and `tls_key`".into(),
            ));
        }
        if source.tls == TlsMode::Disabled && (source.tls_ca.is_some() || source.tls_cert.is_some())
        {
            return Err(invalid(
                "source.tls",
                "\"disabled\" with `tls_ca` or `tls_cert` set: choose a TLS mode, or remove the files".into(),
            ));
        }
        for (key, path) in [
            ("source.tls_ca", &source.tls_ca),
            ("source.tls_cert", &source.tls_cert),
            ("source.tls_key", &source.tls_key),
        ] {
            if let Some(path) = path {
                if !path.is_file() {
                    return Err(invalid(key, format!("{}: no such file", path.display())));
                }
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
