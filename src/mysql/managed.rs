//! Which managed MySQL service `binlake check` is talking to (Azure Database for MySQL flexible
//! server, Amazon RDS for MySQL, Aurora MySQL, Google Cloud SQL), and how each one sets what
//! the check asks for: parameter groups, server parameters and database flags instead of
//! `SET GLOBAL` and my.cnf, which these services do not allow.
//!
//! A service is recognised by what it shows any client: a system variable of its own
//! (`aurora_version`: Aurora MySQL's version, AWS "Checking Aurora MySQL versions";
//! `aad_auth_only`: the Microsoft Entra-only server parameter of Azure flexible server;
//! `cloudsql_iam_authentication`: Cloud SQL's IAM authentication flag), where its binaries live
//! (RDS installs under `/rdsdbbin/`, as `@@basedir` shows), or the endpoint's host name
//! (`*.rds.amazonaws.com`, `*.mysql.database.azure.com`).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// A managed MySQL service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    AzureFlexible,
    RdsMySql,
    AuroraMySql,
    CloudSql,
}

/// A service, and what gave it away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub service: Service,
    pub signal: String,
}

/// `@@global.<name>`; `None` when the server has no such variable (an error here means absent).
pub async fn global(conn: &mut Conn, name: &str) -> Option<String> {
    conn.query_first::<Option<String>, _>(format!("SELECT @@global.{name}"))
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Recognises the service behind `conn`, reached at `host`; `None` for a server run by hand.
pub async fn detect(conn: &mut Conn, host: &str) -> Option<Detected> {
    let found = |service, signal: String| Some(Detected { service, signal });
    if let Some(v) = global(conn, "aurora_version").await {
        return found(Service::AuroraMySql, format!("aurora_version={v}"));
    }
    if let Some(v) = global(conn, "aad_auth_only").await {
        return found(Service::AzureFlexible, format!("aad_auth_only={v}"));
    }
    if let Some(v) = global(conn, "cloudsql_iam_authentication").await {
        return found(
            Service::CloudSql,
            format!("cloudsql_iam_authentication={v}"),
        );
    }
    if let Some(dir) = global(conn, "basedir").await {
        if dir.starts_with("/rdsdbbin/") {
            return found(Service::RdsMySql, format!("basedir={dir}"));
        }
    }
    let host = host.to_ascii_lowercase();
    if host.ends_with(".rds.amazonaws.com") {
        return found(Service::RdsMySql, format!("host {host}"));
    }
    if host.ends_with(".mysql.database.azure.com") {
        return found(Service::AzureFlexible, format!("host {host}"));
    }
    None
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::AzureFlexible => "Azure Database for MySQL flexible server",
            Service::RdsMySql => "Amazon RDS for MySQL",
            Service::AuroraMySql => "Amazon Aurora MySQL",
            Service::CloudSql => "Google Cloud SQL for MySQL",
        }
    }

    /// How to set server variable `name` to `value` on this service.
    pub fn set_parameter(self, name: &str, value: &str) -> String {
        match self {
            Service::AzureFlexible => format!(
                "set the server parameter: az mysql flexible-server parameter set --resource-group <group> --server-name <server> --name {name} --value {value}"
            ),
            Service::RdsMySql => format!(
                "set {name} = {value} in the instance's DB parameter group (a custom one: the default group cannot be changed), then reboot if the parameter is static"
            ),
            Service::AuroraMySql => format!(
                "set {name} = {value} in the DB cluster parameter group, then reboot the writer if the parameter is static"
            ),
            Service::CloudSql => format!(
                "set the database flag: gcloud sql instances patch <instance> --database-flags={name}={value} (the flag list replaces the instance's flags: repeat the others)"
            ),
        }
    }

    /// Who on this service may grant replication privileges.
    pub fn admin(self) -> &'static str {
        match self {
            Service::AzureFlexible => "the server admin",
            Service::RdsMySql | Service::AuroraMySql => "the master user",
            Service::CloudSql => "a user of the cloudsqlsuperuser role",
        }
    }

    /// How the service keeps binlogs around, and how to lengthen it.
    pub fn retention_fix(self) -> &'static str {
        match self {
            Service::AzureFlexible => "set the server parameter binlog_expire_logs_seconds to 259200 (3 days) or more, and size the storage for it",
            Service::RdsMySql | Service::AuroraMySql => "as the master user: CALL mysql.rds_set_configuration('binlog retention hours', 72); (RDS otherwise purges binlogs as soon as it can)",
            Service::CloudSql => "binlogs follow point-in-time recovery's transaction log retention: gcloud sql instances patch <instance> --retained-transaction-log-days=7",
        }
    }
}

/// RDS and Aurora: `binlog retention hours` from `mysql.rds_show_configuration` (`None` when
/// unset: RDS then purges binlogs as soon as it can). `Err` when the call is refused.
pub async fn rds_binlog_retention_hours(conn: &mut Conn) -> Result<Option<u64>, String> {
    let rows: Vec<mysql_async::Row> = conn
        .query("CALL mysql.rds_show_configuration")
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .find(|r| {
            r.get::<Option<String>, _>(0)
                .flatten()
                .is_some_and(|n| n.eq_ignore_ascii_case("binlog retention hours"))
        })
        .and_then(|r| r.get::<Option<String>, _>(1).flatten())
        .and_then(|v| v.trim().parse().ok()))
}
