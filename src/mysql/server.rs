//! The source server outside the replication stream: connecting (options, timeouts), the
//! server's version and flavour, its binlog position and files, and the schema of the included
//! tables, read from `information_schema` and `SHOW CREATE TABLE`.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::config::{SourceConfig, SourceUrl, TableFilter};
use super::schema::SchemaTracker;
use super::SourceError;

/// A connected source's view of the server.
pub struct ServerInfo {
    pub version: String,
    pub is_mariadb: bool,
}

/// How to reach the server, and the statements binlake runs on it.
pub struct Server {
    url: SourceUrl,
    password: Option<String>,
    /// The URL without the password, for messages.
    pub(super) display_url: String,
    connect_timeout: Duration,
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
        })
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

    async fn connect_with(&self, opts: Opts) -> Result<Conn, SourceError> {
        let timeout = self.connect_timeout;
        match tokio::time::timeout(timeout, Conn::new(opts)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(SourceError::Connect {
                url: self.display_url.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(SourceError::Connect {
                url: self.display_url.clone(),
                reason: format!("no answer within {} s", timeout.as_secs()),
            }),
        }
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
        Ok(ServerInfo {
            is_mariadb: version.to_ascii_lowercase().contains("mariadb"),
            version,
        })
    }

    /// The server's current binlog file and position (the end of the last event).
    pub async fn current_position(&self, conn: &mut Conn) -> Result<(String, u64), SourceError> {
        let row: Option<mysql_async::Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(self.server_err("SHOW MASTER STATUS"))?;
        let row = row.ok_or_else(|| SourceError::Server {
            url: self.display_url.clone(),
            what: "SHOW MASTER STATUS".into(),
            reason: "the binary log is off (log_bin); binlake check says how to turn it on".into(),
        })?;
        let file: String = row.get(0).unwrap_or_default();
        let pos: u64 = row.get(1).unwrap_or_default();
        Ok((file, pos))
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
