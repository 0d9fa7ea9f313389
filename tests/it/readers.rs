//! The engines users point at a lake, on a table written under each `[lake] readers` profile
//! (docs/readers.md): Python `deltalake` (`to_pyarrow_table`, `to_pandas`, `QueryBuilder`),
//! DuckDB with its delta extension and Polars' `read_delta`, each read compared value by value
//! with MariaDB; the reads a profile cannot serve are asserted to fail the way the docs say.
//! The table has inserts, updates and deletes in small batches, so that silver carries deletion
//! vectors where the profile allows them.

use crate::lake::write_run_config;
use crate::support::binlake;
use crate::support::lake::{python, source_rows};
use crate::support::mariadb::MariaDb;

const ENGINES: [&str; 5] = [
    "deltalake.to_pyarrow_table",
    "deltalake.to_pandas",
    "deltalake.QueryBuilder",
    "duckdb",
    "polars",
];

/// What each profile's silver table is: (min reader version, reader features, DATETIME's
/// Arrow type as `deltalake` reports it, engines that cannot read it).
fn expected(
    profile: &str,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
) {
    let no_deletion_vectors: &[&str] = &["deltalake.to_pyarrow_table", "deltalake.to_pandas"];
    match profile {
        "fabric" => (
            "3",
            "deletionVectors",
            "timestamp[us, tz=UTC]",
            no_deletion_vectors,
        ),
        "modern" => (
            "3",
            "deletionVectors,timestampNtz",
            "timestamp[us]",
            no_deletion_vectors,
        ),
        "delta-1" => ("1", "", "timestamp[us, tz=UTC]", &[]),
        other => panic!("{other}"),
    }
}

#[test]
fn every_engine_reads_each_profile_as_the_docs_say() {
    let python = python();
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.vals (id INT PRIMARY KEY, dt DATETIME(6), \
         ts TIMESTAMP(6) NULL, day DATE, amount DECIMAL(20,6), ratio DOUBLE, big BIGINT UNSIGNED, \
         name VARCHAR(30) CHARACTER SET utf8mb4, note VARCHAR(10)); \
         SET time_zone = '+00:00'; \
         INSERT INTO shop.vals VALUES \
         (1, '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', '1000-01-01', -99999999999999.999999, -2.25, 0, '', NULL), \
         (2, '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '9999-12-31', 99999999999999.999999, 1234.5, 18446744073709551615, 'naïve 🐬', 'x'), \
         (3, '2024-03-04 05:06:07.123456', '2024-03-04 05:06:07.123456', '2024-03-04', 0.000001, 0.5, 42, 'plain', NULL), \
         (4, '2262-04-12 00:00:00.000001', NULL, '1970-01-01', 1.5, -0.5, 7, 'gone', NULL); \
         UPDATE shop.vals SET note = 'updated', ratio = 2.5 WHERE id = 3; \
         DELETE FROM shop.vals WHERE id = 4; \
         UPDATE shop.vals SET name = 'renamed' WHERE id = 1;",
    );
    let source = source_rows(
        &db,
        "SELECT id, DATE_FORMAT(dt, '%Y-%m-%d %H:%i:%s.%f'), \
         IFNULL(DATE_FORMAT(CONVERT_TZ(ts, @@session.time_zone, '+00:00'), '%Y-%m-%d %H:%i:%s.%f'), 'NULL'), \
         day, amount, ratio, big, name, IFNULL(note, 'NULL') FROM shop.vals ORDER BY id",
    );
    assert_eq!(source.len(), 3);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/readers.py");
    for profile in ["fabric", "modern", "delta-1"] {
        let dir = tempfile::tempdir().unwrap();
        // One change per batch: later batches replace and delete rows earlier ones wrote.
        let config = write_run_config(
            dir.path(),
            &db,
            "kind = \"embedded\"",
            &format!("url = \"lake\"\nmax_rows = 1\nreaders = \"{profile}\""),
        );
        let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{profile}: {stderr}");
        let table = dir.path().join("lake/silver/shop/vals");
        let out = crate::run_ok(std::process::Command::new(&python).arg(&script).arg(&table));
        let out = String::from_utf8(out.stdout).unwrap();
        let (reader, features, datetime, failing) = expected(profile);
        assert!(
            out.lines()
                .any(|l| l == format!("protocol|{reader}|{features}")),
            "{profile}: the protocol\n{out}"
        );
        assert!(
            out.lines().any(|l| l == format!("type|dt|{datetime}")),
            "{profile}: DATETIME's type\n{out}"
        );
        for engine in ENGINES {
            let lines: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with(&format!("{engine}|")))
                .collect();
            if failing.contains(&engine) {
                assert_eq!(lines.len(), 1, "{profile}, {engine}: one error\n{out}");
                assert!(
                    lines[0].starts_with(&format!("{engine}|error|DeltaProtocolError: "))
                        && lines[0].contains("deletionVectors"),
                    "{profile}, {engine}: fails on the deletion vectors, as docs/readers.md says\n{out}"
                );
                continue;
            }
            let rows: Vec<String> = lines
                .iter()
                .map(|l| {
                    l.strip_prefix(&format!("{engine}|rows|"))
                        .unwrap_or_else(|| panic!("{profile}, {engine}: {l}"))
                        .to_string()
                })
                .collect();
            assert_eq!(
                rows, source,
                "{profile}, {engine}: every value equals MariaDB's"
            );
        }
    }
}
