//! Preflight: `binlake check` asks the server whether binlake can capture from it (binlog on,
//! ROW format, FULL row image, row metadata, server id, GTIDs, retention, privileges), then runs,
//! read-only and on the same kind of connection, every statement the source and the snapshot
//! run at start, and says how to fix each problem. Nothing a statement answers with an error is
//! passed over: it is a failure naming the statement.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::config::{SnapshotMode, SnapshotPositions, SourceConfig, TableFilter, TlsMode};
use super::flavor::ServerInfo;
use super::managed::{self, Service};
use super::server::Server;
use super::SourceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// Capture works, but something is weaker than it should be.
    Warn,
    /// Capture cannot work until this is fixed.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    /// What the server has.
    pub found: String,
    /// How to fix it; empty when nothing needs fixing.
    pub fix: String,
}

impl Finding {
    fn ok(check: &'static str, found: impl Into<String>) -> Self {
        Finding {
            check,
            verdict: Verdict::Ok,
            found: found.into(),
            fix: String::new(),
        }
    }
    fn warn(check: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            verdict: Verdict::Warn,
            found: found.into(),
            fix: fix.into(),
        }
    }
    fn fail(check: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            verdict: Verdict::Fail,
            found: found.into(),
            fix: fix.into(),
        }
    }
}

use managed::global as variable;

/// Runs every check; the connection error itself is the only failure returned as `Err`.
pub async fn check(config: &SourceConfig) -> Result<Vec<Finding>, SourceError> {
    let source = Server::new(config)?;
    let mut conn = source.connect().await?;
    let info = source.server_info(&mut conn).await?;
    let mut out = vec![Finding::ok("server", info.version.clone())];
    out.push(tls_finding(&source, &mut conn, config).await);
    let cnf = if info.is_mariadb {
        "[mariadbd]"
    } else {
        "[mysqld]"
    };
    let host = super::config::SourceUrl::parse(&config.url)
        .map(|u| u.host)
        .unwrap_or_default();
    let service = managed::detect(&mut conn, &host).await.map(|d| {
        out.push(Finding::ok(
            "service",
            format!("{} ({})", d.service.name(), d.signal),
        ));
        d.service
    });
    // A managed service takes settings through its own parameters, not SET GLOBAL / my.cnf.
    let set = |name: &str, value: &str, by_hand: String| match service {
        Some(s) => s.set_parameter(name, value),
        None => by_hand,
    };

    let log_bin = variable(&mut conn, "log_bin").await.unwrap_or_default();
    if log_bin == "1" || log_bin.eq_ignore_ascii_case("ON") {
        out.push(Finding::ok("binlog", "log_bin=ON"));
    } else {
        out.push(Finding::fail(
            "binlog",
            format!("log_bin={log_bin}"),
            format!("start the server with log_bin (add `log_bin = mysql-bin` under {cnf}) and restart it"),
        ));
    }

    let format = variable(&mut conn, "binlog_format")
        .await
        .unwrap_or_default();
    if format.eq_ignore_ascii_case("ROW") {
        out.push(Finding::ok("binlog_format", "ROW"));
    } else {
        out.push(Finding::fail(
            "binlog_format",
            format.clone(),
            set("binlog_format", "ROW", format!("SET GLOBAL binlog_format = 'ROW' and add `binlog_format = ROW` under {cnf}; sessions opened before keep their format")),
        ));
    }

    let image = variable(&mut conn, "binlog_row_image")
        .await
        .unwrap_or_else(|| "FULL".into());
    if image.eq_ignore_ascii_case("FULL") {
        out.push(Finding::ok("binlog_row_image", "FULL"));
    } else {
        out.push(Finding::fail(
            "binlog_row_image",
            image,
            format!("{}: without it updates lack their before image and rows their unchanged columns", set("binlog_row_image", "FULL", format!("SET GLOBAL binlog_row_image = 'FULL' and add `binlog_row_image = FULL` under {cnf}"))),
        ));
    }

    match variable(&mut conn, "binlog_row_metadata").await {
        Some(m) if m.eq_ignore_ascii_case("FULL") => out.push(Finding::ok("binlog_row_metadata", "FULL")),
        Some(m) => out.push(Finding::warn(
            "binlog_row_metadata",
            m,
            format!("{}: binlake then reads column names, ENUM/SET members and keys from the binlog instead of relying on tracked DDL alone", set("binlog_row_metadata", "FULL", format!("SET GLOBAL binlog_row_metadata = 'FULL' (and under {cnf})"))),
        )),
        None => out.push(Finding::warn(
            "binlog_row_metadata",
            "not supported by this server",
            "column names come from information_schema and tracked DDL; keep the checkpoint's schema history",
        )),
    }

    let server_id = variable(&mut conn, "server_id").await.unwrap_or_default();
    let replicas_statement = info.replicas_statement();
    let replicas: Vec<mysql_async::Row> = match conn.query(replicas_statement).await {
        Ok(rows) => rows,
        Err(e) => {
            out.push(Finding::fail(
                "replicas",
                format!("{replicas_statement}: {e}"),
                format!(
                    "binlake lists the connected replicas to find a server_id clash; GRANT REPLICATION SLAVE ON *.* TO {}",
                    grant_target(config)
                ),
            ));
            Vec::new()
        }
    };
    let clash = replicas
        .iter()
        .any(|r| r.get::<u32, _>(0) == Some(config.server_id));
    if server_id == config.server_id.to_string() {
        out.push(Finding::fail(
            "server_id",
            format!(
                "binlake's server_id {} is the server's own",
                config.server_id
            ),
            "choose another `source.server_id`, unique among the server and its replicas",
        ));
    } else if clash {
        out.push(Finding::fail(
            "server_id",
            format!("a replica with server_id {} is connected", config.server_id),
            "choose another `source.server_id`: two replicas with one id disconnect each other",
        ));
    } else {
        out.push(Finding::ok(
            "server_id",
            format!("{} (server {server_id})", config.server_id),
        ));
    }

    if info.is_mariadb {
        let pos = variable(&mut conn, "gtid_binlog_pos")
            .await
            .unwrap_or_default();
        out.push(Finding::ok(
            "gtid",
            format!("MariaDB GTIDs, gtid_binlog_pos={pos}"),
        ));
    } else {
        let mode = variable(&mut conn, "gtid_mode").await.unwrap_or_default();
        if mode.eq_ignore_ascii_case("ON") {
            out.push(Finding::ok("gtid", "gtid_mode=ON"));
        } else {
            out.push(Finding::warn(
                "gtid",
                format!("gtid_mode={mode}"),
                match service {
                    Some(s) => format!("positions are file/offset only; for failover-safe positions {}, then gtid_mode = ON the same way", s.set_parameter("enforce_gtid_consistency", "ON")),
                    None => format!("positions are file/offset only; for failover-safe positions set gtid_mode=ON and enforce_gtid_consistency=ON under {cnf}"),
                },
            ));
        }
    }

    match service {
        Some(s @ (Service::RdsMySql | Service::AuroraMySql)) => {
            out.push(rds_retention_finding(&mut conn, s).await)
        }
        _ => out.push(retention_finding(&mut conn, service).await),
    }
    if service.is_some() {
        match variable(&mut conn, "require_secure_transport").await {
            Some(v) if v == "1" || v.eq_ignore_ascii_case("ON") => out.push(Finding::ok(
                "secure transport",
                "require_secure_transport=ON",
            )),
            Some(v) => out.push(Finding::warn(
                "secure transport",
                format!("require_secure_transport={v}: the service lets clients in over plain TCP"),
                set("require_secure_transport", "ON", String::new()),
            )),
            None => {}
        }
    }

    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap_or_default();
    let text = grants.join("\n").to_ascii_uppercase();
    let all = text.contains("ALL PRIVILEGES ON *.*");
    let has = |p: &str| all || text.contains(p);
    let user = grant_target(config);
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") && !has("SUPER") {
        missing.push(if info.is_mariadb {
            "BINLOG MONITOR"
        } else {
            "REPLICATION CLIENT"
        });
    }
    if !has("SELECT") {
        missing.push("SELECT");
    }
    let snapshots = config.snapshot != SnapshotMode::Never;
    let watermarks = config.uses_watermarks(info.is_mariadb);
    let read_only = config.snapshot_positions == SnapshotPositions::ReadOnly;
    if !info.is_mariadb && !watermarks && !read_only && !has("RELOAD") && snapshots {
        // snapshot_locking = "global": a brief FLUSH TABLES WITH READ LOCK per chunk.
        missing.push("RELOAD");
    }
    if watermarks && snapshots {
        let (db, table) = config.watermark_table_id();
        let on_db = text.contains(&format!("ON `{}`.*", db.to_ascii_uppercase()))
            || text.contains(&format!(
                "ON `{}`.`{}`",
                db.to_ascii_uppercase(),
                table.to_ascii_uppercase()
            ));
        let global = ["CREATE", "INSERT", "DELETE"]
            .iter()
            .all(|p| text.contains(p))
            && text.contains("ON *.*");
        let in_order = variable(&mut conn, "binlog_order_commits").await;
        if in_order
            .as_deref()
            .is_some_and(|v| v == "0" || v.eq_ignore_ascii_case("OFF"))
        {
            out.push(Finding::fail(
                "snapshot",
                "binlog_order_commits=OFF",
                format!("SET GLOBAL binlog_order_commits = ON (and under {cnf}): the watermark snapshot relies on transactions committing in binlog order"),
            ));
        } else if all || on_db || global {
            out.push(Finding::ok(
                "snapshot",
                format!("watermarks in {db}.{table}, no lock"),
            ));
        } else {
            out.push(Finding::fail(
                "snapshot",
                format!("no write access to the watermark table {db}.{table}"),
                format!("GRANT CREATE, INSERT, DELETE ON `{db}`.* TO {user} (the snapshot writes its watermarks there and takes no lock), or, with GTIDs on, `source.snapshot_positions = \"read_only\"` (no writes), or `source.snapshot_locking = \"global\"`"),
            ));
        }
    }
    if snapshots && read_only {
        out.push(read_only_finding(&mut conn, &info, cnf).await);
    }
    if missing.is_empty() {
        out.push(Finding::ok(
            "privileges",
            if all {
                "ALL PRIVILEGES"
            } else {
                "replication, monitor and SELECT granted"
            },
        ));
    } else {
        let by = service.map_or(String::new(), |s| format!(" (as {})", s.admin()));
        out.push(Finding::fail(
            "privileges",
            format!("missing {}", missing.join(", ")),
            format!("GRANT {} ON *.* TO {user}{by}", missing.join(", ")),
        ));
    }
    out.extend(statements_start_runs(&source, &mut conn, &info, config).await);
    Ok(out)
}

/// Binlog retention from `binlog_expire_logs_seconds` (or `expire_logs_days` before MySQL 8).
async fn retention_finding(conn: &mut Conn, service: Option<Service>) -> Finding {
    let seconds = match variable(conn, "binlog_expire_logs_seconds").await {
        Some(s) => s.parse::<u64>().ok(),
        None => variable(conn, "expire_logs_days")
            .await
            .and_then(|d| d.parse::<f64>().ok())
            .map(|d| (d * 86_400.0) as u64),
    };
    let fix = service.map_or(
        "binlake must run again before a binlog it needs is purged, or it needs a new snapshot; keep at least 3 days (binlog_expire_logs_seconds = 259200)",
        Service::retention_fix,
    );
    match seconds {
        Some(0) => Finding::ok("binlog retention", "binlogs are never purged automatically"),
        Some(s) if s >= 3 * 86_400 => Finding::ok("binlog retention", format!("{} h", s / 3600)),
        Some(s) => Finding::warn("binlog retention", format!("{} h", s / 3600), fix),
        None => Finding::warn("binlog retention", "unknown", fix),
    }
}

/// RDS and Aurora keep binlogs for `binlog retention hours` (mysql.rds_set_configuration),
/// whatever binlog_expire_logs_seconds says.
async fn rds_retention_finding(conn: &mut Conn, service: Service) -> Finding {
    match managed::rds_binlog_retention_hours(conn).await {
        Ok(Some(h)) if h >= 72 => Finding::ok("binlog retention", format!("{h} h (binlog retention hours)")),
        Ok(Some(h)) => Finding::warn(
            "binlog retention",
            format!("{h} h (binlog retention hours)"),
            service.retention_fix(),
        ),
        Ok(None) => Finding::warn(
            "binlog retention",
            "binlog retention hours is not set: RDS purges binlogs as soon as it can, so a stopped binlake soon needs a new snapshot",
            service.retention_fix(),
        ),
        Err(e) => Finding::warn(
            "binlog retention",
            format!("CALL mysql.rds_show_configuration: {e}"),
            format!("{}; ask the master user to check it with CALL mysql.rds_show_configuration", service.retention_fix()),
        ),
    }
}

/// `snapshot_positions = "read_only"`: what places each chunk's read in the stream. MySQL needs
/// GTIDs and `@@global.gtid_executed` readable; MariaDB reports its snapshot's position.
async fn read_only_finding(conn: &mut Conn, info: &ServerInfo, cnf: &str) -> Finding {
    if info.is_mariadb {
        return Finding::ok(
            "snapshot",
            "read-only: each chunk placed by MariaDB's binlog_snapshot_position; no lock, no writes",
        );
    }
    let mode = variable(conn, "gtid_mode").await.unwrap_or_default();
    if !mode.eq_ignore_ascii_case("ON") {
        return Finding::fail(
            "snapshot",
            format!("snapshot_positions = \"read_only\" with gtid_mode={mode}"),
            format!("the read-only snapshot places chunks by the executed GTID set: set gtid_mode=ON and enforce_gtid_consistency=ON under {cnf}, or use snapshot_positions = \"watermark\""),
        );
    }
    match conn
        .query_first::<Option<String>, _>("SELECT @@global.gtid_executed")
        .await
    {
        Ok(_) => Finding::ok(
            "snapshot",
            "read-only: each chunk placed by @@global.gtid_executed; no lock, no writes",
        ),
        Err(e) => Finding::fail(
            "snapshot",
            format!("SELECT @@global.gtid_executed: {e}"),
            "report this with the server version",
        ),
    }
}

/// The connection's TLS, as `[source] tls` asked for it.
async fn tls_finding(source: &Server, conn: &mut Conn, config: &SourceConfig) -> Finding {
    let mode = config.tls.name();
    match source.tls_session(conn).await {
        Ok(Some((version, cipher))) => {
            Finding::ok("tls", format!("{version}, {cipher} (tls = \"{mode}\")"))
        }
        Ok(None) if config.tls == TlsMode::Disabled => {
            Finding::ok("tls", "plain TCP (tls = \"disabled\")")
        }
        // Loopback traffic crosses no network.
        Ok(None) if source.is_loopback() => Finding::ok(
            "tls",
            format!("plain TCP on loopback: the server offers no TLS (tls = \"{mode}\")"),
        ),
        Ok(None) => Finding::warn(
            "tls",
            format!("plain TCP: the server offers no TLS (tls = \"{mode}\")"),
            "turn TLS on at the server (ssl_cert, ssl_key) and set `source.tls = \"verify_identity\"` with `tls_ca`: changes and the password otherwise cross the network in clear",
        ),
        Err(e) => Finding::fail("tls", e.to_string(), "report this with the server version"),
    }
}

/// Runs, read-only, every statement `binlake source` runs before it streams and while it
/// snapshots, on the same kind of connection: a statement the server refuses here would stop
/// capture at start.
async fn statements_start_runs(
    source: &Server,
    conn: &mut Conn,
    info: &ServerInfo,
    config: &SourceConfig,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let user = grant_target(config);
    match source.binlog_status(conn, info).await {
        Ok(status) => out.push(Finding::ok(
            "binlog position",
            format!(
                "{}: {}:{}",
                info.binlog_status_statement(),
                status.file,
                status.pos
            ),
        )),
        Err(e) => out.push(Finding::fail(
            "binlog position",
            e.to_string(),
            format!("GRANT REPLICATION CLIENT ON *.* TO {user} (MariaDB: BINLOG MONITOR), and turn on log_bin"),
        )),
    }
    match source.oldest_binlog(conn).await {
        Ok(file) => out.push(Finding::ok("binlog files", format!("oldest {file}"))),
        Err(e) => out.push(Finding::fail(
            "binlog files",
            e.to_string(),
            format!("GRANT REPLICATION CLIENT ON *.* TO {user} (MariaDB: BINLOG MONITOR)"),
        )),
    }
    let session = info.replication_session(config.heartbeat_secs * 1_000_000_000);
    let mut failed = None;
    for statement in &session {
        if let Err(e) = conn.query_drop(statement).await {
            failed = Some(format!("{statement}: {e}"));
            break;
        }
    }
    match failed {
        None => out.push(Finding::ok("replication session", session.join("; "))),
        Some(e) => out.push(Finding::fail(
            "replication session",
            e,
            "the server refuses the session variables its binlog sender reads; report this with the server version",
        )),
    }
    let filter = match TableFilter::new(&config.include, &config.exclude) {
        Ok(f) => f,
        Err(e) => {
            out.push(Finding::fail(
                "tables",
                e,
                "fix `source.include` / `source.exclude`",
            ));
            return out;
        }
    };
    let tables = match source.load_schema(conn, &filter).await {
        Ok(schema) => {
            let ids: Vec<_> = schema.tables().map(|(id, _)| id.clone()).collect();
            if ids.is_empty() && config.include.is_empty() {
                out.push(Finding::ok(
                    "tables",
                    "no tables yet; tables created later are captured",
                ));
            } else if ids.is_empty() {
                out.push(Finding::warn(
                    "tables",
                    "no table matches `source.include` / `source.exclude`",
                    "check the globs, and that the user can see the tables (SELECT)",
                ));
            } else {
                out.push(Finding::ok(
                    "tables",
                    format!(
                        "{} tables: information_schema and SHOW CREATE TABLE answered",
                        ids.len()
                    ),
                ));
            }
            ids
        }
        Err(e) => {
            out.push(Finding::fail(
                "tables",
                e.to_string(),
                format!("GRANT SELECT ON <db>.* TO {user} for every captured database"),
            ));
            Vec::new()
        }
    };
    if config.snapshot == SnapshotMode::Never {
        return out;
    }
    let mut snapshot = vec![
        "SET SESSION time_zone = '+00:00'".to_string(),
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_string(),
    ];
    if info.has_snapshot_position() {
        snapshot.push("START TRANSACTION WITH CONSISTENT SNAPSHOT".into());
        snapshot.push("SHOW STATUS LIKE 'binlog_snapshot_%'".into());
    } else {
        snapshot.push("START TRANSACTION WITH CONSISTENT SNAPSHOT".into());
    }
    for id in &tables {
        snapshot.push(format!(
            "SELECT * FROM `{}`.`{}` LIMIT 0",
            id.db.replace('`', "``"),
            id.table.replace('`', "``")
        ));
    }
    let mut failed = None;
    for statement in &snapshot {
        if let Err(e) = conn.query_drop(statement).await {
            failed = Some(format!("{statement}: {e}"));
            break;
        }
    }
    let _ = conn.query_drop("ROLLBACK").await;
    match failed {
        None => out.push(Finding::ok(
            "snapshot reads",
            format!(
                "consistent-snapshot transaction and SELECT on {} tables",
                tables.len()
            ),
        )),
        Some(e) => out.push(Finding::fail(
            "snapshot reads",
            e,
            format!("GRANT SELECT ON <db>.* TO {user} for every captured database"),
        )),
    }
    out
}

/// `'user'@'%'` for GRANT hints.
fn grant_target(config: &SourceConfig) -> String {
    super::config::SourceUrl::parse(&config.url)
        .map(|u| format!("'{}'@'%'", u.user))
        .unwrap_or_else(|_| "the binlake user".into())
}

/// The report `binlake check` prints.
pub fn format_report(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let tag = match f.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        s.push_str(&format!("{tag}  {:<20} {}\n", f.check, f.found));
        if !f.fix.is_empty() {
            s.push_str(&format!("      {:<20} fix: {}\n", "", f.fix));
        }
    }
    let worst = findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Ok);
    s.push_str(match worst {
        Verdict::Ok => "capture can start\n",
        Verdict::Warn => "capture can start; see the warnings\n",
        Verdict::Fail => "capture cannot start until the failures are fixed\n",
    });
    s
}
