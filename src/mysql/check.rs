//! Preflight: `binlake check` asks the server whether binlake can capture from it (binlog on,
//! ROW format, FULL row image, row metadata, server id, GTIDs, retention, privileges) and says
//! how to fix each problem.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::config::SourceConfig;
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

async fn variable(conn: &mut Conn, name: &str) -> Option<String> {
    // Variables a server version lacks are an error here, which means "absent".
    conn.query_first::<Option<String>, _>(format!("SELECT @@global.{name}"))
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Runs every check; the connection error itself is the only failure returned as `Err`.
pub async fn check(config: &SourceConfig) -> Result<Vec<Finding>, SourceError> {
    let source = Server::new(config)?;
    let mut conn = source.connect().await?;
    let info = source.server_info(&mut conn).await?;
    let mut out = vec![Finding::ok("server", info.version.clone())];
    let cnf = if info.is_mariadb {
        "[mariadbd]"
    } else {
        "[mysqld]"
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
            format!("SET GLOBAL binlog_format = 'ROW' and add `binlog_format = ROW` under {cnf}; sessions opened before keep their format"),
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
            format!("SET GLOBAL binlog_row_image = 'FULL' and add `binlog_row_image = FULL` under {cnf}: without it updates lack their before image and rows their unchanged columns"),
        ));
    }

    match variable(&mut conn, "binlog_row_metadata").await {
        Some(m) if m.eq_ignore_ascii_case("FULL") => out.push(Finding::ok("binlog_row_metadata", "FULL")),
        Some(m) => out.push(Finding::warn(
            "binlog_row_metadata",
            m,
            format!("SET GLOBAL binlog_row_metadata = 'FULL' (and under {cnf}): binlake then reads column names, ENUM/SET members and keys from the binlog instead of relying on tracked DDL alone"),
        )),
        None => out.push(Finding::warn(
            "binlog_row_metadata",
            "not supported by this server",
            "column names come from information_schema and tracked DDL; keep the checkpoint's schema history",
        )),
    }

    let server_id = variable(&mut conn, "server_id").await.unwrap_or_default();
    let replicas: Vec<mysql_async::Row> = conn.query("SHOW SLAVE HOSTS").await.unwrap_or_default();
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
                format!("positions are file/offset only; for failover-safe positions set gtid_mode=ON and enforce_gtid_consistency=ON under {cnf}"),
            ));
        }
    }

    let seconds = match variable(&mut conn, "binlog_expire_logs_seconds").await {
        Some(s) => s.parse::<u64>().ok(),
        None => variable(&mut conn, "expire_logs_days")
            .await
            .and_then(|d| d.parse::<f64>().ok())
            .map(|d| (d * 86_400.0) as u64),
    };
    match seconds {
        Some(0) => out.push(Finding::ok("binlog retention", "binlogs are never purged automatically")),
        Some(s) if s >= 3 * 86_400 => out.push(Finding::ok("binlog retention", format!("{} h", s / 3600))),
        Some(s) => out.push(Finding::warn(
            "binlog retention",
            format!("{} h", s / 3600),
            "binlake must run again before a binlog it needs is purged, or it needs a new snapshot; keep at least 3 days (binlog_expire_logs_seconds = 259200)",
        )),
        None => out.push(Finding::warn("binlog retention", "unknown", "check the server's binlog expiry settings")),
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
    if !info.is_mariadb && !has("RELOAD") && config.snapshot != super::config::SnapshotMode::Never {
        // MySQL has no lock-free consistent snapshot position; the fallback takes a brief
        // FLUSH TABLES WITH READ LOCK per chunk.
        missing.push("RELOAD");
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
        out.push(Finding::fail(
            "privileges",
            format!("missing {}", missing.join(", ")),
            format!("GRANT {} ON *.* TO {user}", missing.join(", ")),
        ));
    }
    Ok(out)
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
