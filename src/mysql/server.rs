//! The source server outside the replication stream: connecting (options, timeouts, TLS), the
//! server's version and flavour, its binlog position and files, and the schema of the included
//! tables, read from `information_schema` and `SHOW CREATE TABLE`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};

use super::config::{SourceConfig, SourceUrl, TableFilter};
use super::flavor::ServerInfo;
use super::schema::SchemaTracker;
use super::tls::{explain, is_no_tls_offered, name_the_certificate_holds, TlsSettings};
use super::SourceError;

/// Where the server is writing its binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogStatus {
    pub file: String,
    pub pos: u64,
    /// MySQL: `Executed_Gtid_Set` (empty without GTIDs, and on MariaDB).
    pub executed_gtids: String,
}

/// How to reach the server, and the statements binlake runs on it.
pub struct Server {
    url: SourceUrl,
    password: Option<String>,
    /// The URL without the password, for messages.
    pub(super) display_url: String,
    connect_timeout: Duration,
    tls: TlsSettings,
    /// Set once a `preferred` connection found the server offers no TLS: later connections
    /// go plain at once.
    plain_only: AtomicBool,
}

impl Server {
    pub fn new(config: &SourceConfig) -> Result<Server, SourceError> {
        let url = SourceUrl::parse(&config.url).map_err(SourceError::Unsupported)?;
        let display_url = format!("mysql://{}@{}:{}", url.user, url.host, url.port);
        Ok(Server {
            url,
            password: config.password.clone(),
            display_url,
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            tls: TlsSettings::from_config(config),
            plain_only: AtomicBool::new(false),
        })
    }

    /// Whether the server is on this machine's loopback interface.
    pub fn is_loopback(&self) -> bool {
        let host = self.url.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// `mysql://user@host:port`, without the password.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    fn opts(&self) -> Opts {
        let password = self.password.clone().or_else(|| self.url.password.clone());
        OptsBuilder::default()
            .ip_or_hostname(self.url.host.clone())
            .tcp_port(self.url.port)
            .user(Some(self.url.user.clone()))
            .pass(password)
            .prefer_socket(false)
            .conn_ttl(None)
            .stmt_cache_size(0)
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .into()
    }

    /// Opens a plain connection (for queries).
    pub async fn connect(&self) -> Result<Conn, SourceError> {
        self.connect_with(self.opts()).await
    }

    /// Opens a connection that keeps its prepared statements (for `binlake generate`, which
    /// runs the same few statements many times; without a cache each one is prepared anew and
    /// the server's max_prepared_stmt_count runs out).
    pub async fn connect_for_workload(&self) -> Result<Conn, SourceError> {
        self.connect_with(
            OptsBuilder::from_opts(self.opts())
                .stmt_cache_size(64)
                .into(),
        )
        .await
    }

    /// Connects with the TLS options of `[source] tls`; `preferred` goes plain when the
    /// server offers no TLS.
    async fn connect_with(&self, opts: Opts) -> Result<Conn, SourceError> {
        let ssl = if self.plain_only.load(Ordering::Relaxed) {
            None
        } else {
            self.tls.ssl_opts()
        };
        let tried_tls = ssl.is_some();
        let first = self
            .attempt(OptsBuilder::from_opts(opts.clone()).ssl_opts(ssl).into())
            .await;
        match first {
            Err(Some(e)) if tried_tls && self.tls.any_name() => {
                let Some(name) = name_the_certificate_holds(&e) else {
                    return Err(self.connect_error(Some(e)));
                };
                let ssl = self
                    .tls
                    .ssl_opts()
                    .map(|s| s.with_danger_tls_hostname_override(Some(name)));
                self.attempt(OptsBuilder::from_opts(opts).ssl_opts(ssl).into())
                    .await
                    .map_err(|e| self.connect_error(e))
            }
            Err(Some(e))
                if tried_tls && self.tls.falls_back_to_plain() && is_no_tls_offered(&e) =>
            {
                tracing::info!(url = %self.display_url, "the server offers no TLS; connecting without it (tls = \"preferred\")");
                self.plain_only.store(true, Ordering::Relaxed);
                let plain = OptsBuilder::from_opts(opts)
                    .ssl_opts(None::<SslOpts>)
                    .into();
                self.attempt(plain).await.map_err(|e| self.connect_error(e))
            }
            other => other.map_err(|e| self.connect_error(e)),
        }
    }

    /// One connection attempt; `Err(None)` is a timeout.
    async fn attempt(&self, opts: Opts) -> Result<Conn, Option<mysql_async::Error>> {
        match tokio::time::timeout(self.connect_timeout, Conn::new(opts)).await {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        }
    }

    fn connect_error(&self, e: Option<mysql_async::Error>) -> SourceError {
        SourceError::Connect {
            url: self.display_url.clone(),
            reason: match e {
                Some(e) => explain(&e, &self.tls, &self.url.host),
                None => format!("no answer within {} s", self.connect_timeout.as_secs()),
            },
        }
    }

    /// The TLS version and cipher of `conn` (None: plain TCP).
    pub async fn tls_session(
        &self,
        conn: &mut Conn,
    ) -> Result<Option<(String, String)>, SourceError> {
        let rows: Vec<(String, String)> = conn
            .query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
            .await
            .map_err(self.server_err("SHOW SESSION STATUS LIKE 'Ssl_%'"))?;
        let get = |name: &str| {
            rows.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        Ok(get("Ssl_version").zip(get("Ssl_cipher")))
    }

    pub fn server_err(&self, what: &str) -> impl Fn(mysql_async::Error) -> SourceError + '_ {
        let what = what.to_string();
        move |e| SourceError::Server {
            url: self.display_url.clone(),
            what: what.clone(),
            reason: e.to_string(),
        }
    }

    pub async fn server_info(&self, conn: &mut Conn) -> Result<ServerInfo, SourceError> {
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(self.server_err("SELECT VERSION()"))?
            .unwrap_or_default();
        Ok(ServerInfo::parse(&version))
    }

    /// The server's current binlog file and position (the end of the last event).
    pub async fn current_position(
        &self,
        conn: &mut Conn,
        info: &ServerInfo,
    ) -> Result<(String, u64), SourceError> {
        let status = self.binlog_status(conn, info).await?;
        Ok((status.file, status.pos))
    }

    /// The binlog file and position being written, and on MySQL the executed GTID set, with
    /// the statement `info`'s release documents.
    pub async fn binlog_status(
        &self,
        conn: &mut Conn,
        info: &ServerInfo,
    ) -> Result<BinlogStatus, SourceError> {
        let statement = info.binlog_status_statement();
        let row: Option<mysql_async::Row> = conn
            .query_first(statement)
            .await
            .map_err(self.server_err(statement))?;
        let row = row.ok_or_else(|| SourceError::Server {
            url: self.display_url.clone(),
            what: statement.into(),
            reason: "the binary log is off (log_bin); binlake check says how to turn it on".into(),
        })?;
        let executed_gtids = if info.is_mariadb {
            String::new()
        } else {
            row.get::<Option<String>, _>(4)
                .flatten()
                .unwrap_or_default()
                .replace('\n', "")
        };
        Ok(BinlogStatus {
            file: row.get(0).unwrap_or_default(),
            pos: row.get(1).unwrap_or_default(),
            executed_gtids,
        })
    }

    /// The oldest binlog file the server still has.
    pub async fn oldest_binlog(&self, conn: &mut Conn) -> Result<String, SourceError> {
        let rows: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(self.server_err("SHOW BINARY LOGS"))?;
        rows.first()
            .and_then(|r| r.get::<String, _>(0))
            .ok_or_else(|| SourceError::Server {
                url: self.display_url.clone(),
                what: "SHOW BINARY LOGS".into(),
                reason: "no binlog files".into(),
            })
    }

    /// CREATE TABLE of every included table, from the server, into a schema tracker.
    pub async fn load_schema(
        &self,
        conn: &mut Conn,
        filter: &TableFilter,
    ) -> Result<SchemaTracker, SourceError> {
        let tables: Vec<(String, String)> = conn
            .query(
                "SELECT table_schema, table_name FROM information_schema.tables \
                 WHERE table_type = 'BASE TABLE' ORDER BY table_schema, table_name",
            )
            .await
            .map_err(self.server_err("reading information_schema.tables"))?;
        let mut tracker = SchemaTracker::new();
        for (db, table) in tables {
            if !filter.matches(&db, &table) {
                continue;
            }
            let sql = format!(
                "SHOW CREATE TABLE `{}`.`{}`",
                db.replace('`', "``"),
                table.replace('`', "``")
            );
            let row: Option<(String, String)> = conn
                .query_first(&sql)
                .await
                .map_err(self.server_err(&sql))?;
            if let Some((_, ddl)) = row {
                if let Err(e) = tracker.apply(&db, &ddl) {
                    tracing::warn!("{e}");
                }
            }
        }
        Ok(tracker)
    }
}
