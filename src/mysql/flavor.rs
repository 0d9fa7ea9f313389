//! Which server binlake talks to (MySQL or MariaDB, and its release, from `SELECT VERSION()`),
//! and the statements and session variables that release documents. Statement names moved
//! between releases and the old ones were then removed (MySQL 8.4 answers `SHOW MASTER STATUS`
//! with error 1064), so every statement binlake sends outside the replication stream is chosen
//! here, never written inline.
//!
//! Where each choice comes from:
//! - `SHOW BINARY LOG STATUS`: added in MySQL 8.2.0 as the new name of `SHOW MASTER STATUS`,
//!   which 8.4 removed (MySQL's `sql/sql_yacc.yy`, rule `show_binary_log_status_stmt`; the 8.2
//!   and 8.4 release notes). MariaDB 10.5.2 added `SHOW BINLOG STATUS` as its alias and keeps
//!   `SHOW MASTER STATUS` (MariaDB's `sql/sql_yacc.yy`).
//! - `SHOW REPLICAS`: MySQL 8.0.22 (`show_replicas_stmt`; `SHOW SLAVE HOSTS` removed in 8.4).
//!   MariaDB: `SHOW REPLICA HOSTS` from 10.5.1, `SHOW SLAVE HOSTS` before. All put the replica's
//!   server id in the first column.
//! - The binlog sender takes the heartbeat period from a user variable of the replica's
//!   session: `Binlog_sender::init_heartbeat_period` in MySQL's `sql/rpl_binlog_sender.cc`
//!   reads `@master_heartbeat_period` (read here in the 5.7 source); the 8.0.26 terminology
//!   change renamed the replica side's variables to `source_*` (`@source_heartbeat_period`;
//!   the 8.x file was not in reach here, so binlake does not rely on which name a release
//!   reads). MariaDB reads `@master_heartbeat_period` (`sql/sql_repl.cc`). binlake sets both
//!   names on every release: an unread user variable is inert.
//! - The checksum: the sender refuses a replica that does not say it handles checksums
//!   (`get_binlog_checksum_value_at_connect`, `sql/rpl_master.cc`, `sql/rpl_source.cc` from
//!   8.0.26, reading `@master_binlog_checksum`, renamed `@source_binlog_checksum`). mysql_async
//!   sets the old name; binlake also sets the new one.
//! - MariaDB replaces GTID events with dummy queries unless the replica declares
//!   `@mariadb_slave_capability = 4` (MARIA_SLAVE_CAPABILITY_GTID, `sql/log_event.h`).
//! - MySQL 8.3 added tagged GTIDs (`uuid:tag:n`; `sql/rpl_gtid.h`); 9.x writes them when
//!   `gtid_next` names a tag.

/// The two server families binlake speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
}

/// A connected server's flavour and release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `SELECT VERSION()` as the server answered it.
    pub version: String,
    pub flavor: Flavor,
    /// (major, minor, patch), zeros where the version string has none.
    pub release: (u32, u32, u32),
    pub is_mariadb: bool,
}

impl ServerInfo {
    /// Reads `SELECT VERSION()`: `8.4.3`, `8.0.36-28` (Percona), `9.1.0-commercial`,
    /// `10.11.6-MariaDB-0+deb12u1`, `5.5.5-10.6.12-MariaDB-log` (MariaDB's old replication
    /// prefix: the real release follows it).
    pub fn parse(version: &str) -> ServerInfo {
        let is_mariadb = version.to_ascii_lowercase().contains("mariadb");
        let text = if is_mariadb {
            version.strip_prefix("5.5.5-").unwrap_or(version)
        } else {
            version
        };
        let mut parts = text
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let release = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        ServerInfo {
            version: version.to_string(),
            flavor: if is_mariadb {
                Flavor::MariaDb
            } else {
                Flavor::MySql
            },
            release,
            is_mariadb,
        }
    }

    /// Whether the release is at least `major.minor.patch`.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.release >= (major, minor, patch)
    }

    /// The statement that reports the binlog file and position being written (file in column
    /// 0, position in column 1; MySQL's executed GTID set in column 4).
    pub fn binlog_status_statement(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.at_least(8, 2, 0) => "SHOW BINARY LOG STATUS",
            Flavor::MariaDb if self.at_least(10, 5, 2) => "SHOW BINLOG STATUS",
            _ => "SHOW MASTER STATUS",
        }
    }

    /// The statement that lists the replicas connected to the server (server id in column 0).
    pub fn replicas_statement(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.at_least(8, 0, 22) => "SHOW REPLICAS",
            Flavor::MariaDb if self.at_least(10, 5, 1) => "SHOW REPLICA HOSTS",
            _ => "SHOW SLAVE HOSTS",
        }
    }

    /// The session variables the binlog sender reads, set on the replication connection
    /// before COM_BINLOG_DUMP: the heartbeat period (in nanoseconds), the checksum, and on
    /// MariaDB the capability that keeps its GTID events.
    pub fn replication_session(&self, heartbeat_ns: u64) -> Vec<String> {
        let mut out = vec![
            format!("SET @master_heartbeat_period = {heartbeat_ns}"),
            format!("SET @source_heartbeat_period = {heartbeat_ns}"),
        ];
        match self.flavor {
            Flavor::MySql => out.push("SET @source_binlog_checksum = 'CRC32'".into()),
            Flavor::MariaDb => out.push("SET @mariadb_slave_capability = 4".into()),
        }
        out
    }

    /// What the snapshot needs to know where a consistent read sits in the binlog: MariaDB
    /// reports it without a lock (`binlog_snapshot_file`/`_position`); MySQL has no such status.
    pub fn has_snapshot_position(&self) -> bool {
        self.flavor == Flavor::MariaDb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_whatever_the_suffix() {
        let cases = [
            ("8.4.3", Flavor::MySql, (8, 4, 3)),
            ("8.0.36-28", Flavor::MySql, (8, 0, 36)),
            ("9.1.0-commercial", Flavor::MySql, (9, 1, 0)),
            ("8.0.21-log", Flavor::MySql, (8, 0, 21)),
            ("10.11.6-MariaDB-0+deb12u1", Flavor::MariaDb, (10, 11, 6)),
            ("5.5.5-10.6.12-MariaDB-log", Flavor::MariaDb, (10, 6, 12)),
            ("11.4.2-MariaDB", Flavor::MariaDb, (11, 4, 2)),
            ("5.7.44", Flavor::MySql, (5, 7, 44)),
        ];
        for (text, flavor, release) in cases {
            let info = ServerInfo::parse(text);
            assert_eq!((info.flavor, info.release), (flavor, release), "{text}");
        }
    }

    #[test]
    fn each_release_gets_the_statements_it_documents() {
        let status = |v: &str| ServerInfo::parse(v).binlog_status_statement();
        assert_eq!(status("5.7.44"), "SHOW MASTER STATUS");
        assert_eq!(status("8.0.40"), "SHOW MASTER STATUS");
        assert_eq!(status("8.1.0"), "SHOW MASTER STATUS");
        assert_eq!(status("8.2.0"), "SHOW BINARY LOG STATUS");
        assert_eq!(status("8.4.3"), "SHOW BINARY LOG STATUS");
        assert_eq!(status("9.1.0"), "SHOW BINARY LOG STATUS");
        assert_eq!(status("10.4.34-MariaDB"), "SHOW MASTER STATUS");
        assert_eq!(status("10.11.6-MariaDB"), "SHOW BINLOG STATUS");
        let replicas = |v: &str| ServerInfo::parse(v).replicas_statement();
        assert_eq!(replicas("8.0.21"), "SHOW SLAVE HOSTS");
        assert_eq!(replicas("8.0.22"), "SHOW REPLICAS");
        assert_eq!(replicas("8.4.3"), "SHOW REPLICAS");
        assert_eq!(replicas("10.5.0-MariaDB"), "SHOW SLAVE HOSTS");
        assert_eq!(replicas("10.11.6-MariaDB"), "SHOW REPLICA HOSTS");
    }

    #[test]
    fn the_replication_session_sets_both_heartbeat_names() {
        let mysql = ServerInfo::parse("8.4.3").replication_session(5_000_000_000);
        assert_eq!(
            mysql,
            [
                "SET @master_heartbeat_period = 5000000000",
                "SET @source_heartbeat_period = 5000000000",
                "SET @source_binlog_checksum = 'CRC32'",
            ]
        );
        let mariadb = ServerInfo::parse("10.11.6-MariaDB").replication_session(1);
        assert_eq!(mariadb[2], "SET @mariadb_slave_capability = 4");
    }
}
