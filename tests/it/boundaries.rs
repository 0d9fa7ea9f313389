//! A property test of exactness: rows generated at the boundaries of every MySQL type (the
//! extremes of each integer width, signed and unsigned; DECIMAL(38) and DECIMAL(65); FLOAT and
//! DOUBLE extremes, denormals and -0; BIT(1) and BIT(64); DATE, DATETIME and TIMESTAMP at the
//! ends of their ranges and of Arrow's nanosecond range, zero dates; TIME at ±838:59:59; YEAR;
//! empty and 4-byte UTF-8 strings; binary strings; ENUM, SET; JSON of every scalar kind), then
//! updated and deleted at random, go MariaDB → binlake → silver, and silver read back equals
//! SELECT column by column, under the default reader profile and `modern`.
//!
//! The rows come from a seeded generator: `BINLAKE_PROPERTY_SEED` replays a run, and a failure
//! names the seed, the row, the column and both values.

use binlake::workload::Rng;

use crate::support::binlake;
use crate::support::lake::{lake_query, source_rows, table_url};
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;

/// One column: its DDL type, the SQL literals rows take, and how each side prints it alike.
struct Column {
    name: &'static str,
    ddl: &'static str,
    values: &'static [&'static str],
    /// The MariaDB expression (`{c}` is the column).
    source: &'static str,
    /// The DataFusion expression over silver.
    lake: &'static str,
    compare: Compare,
}

#[derive(Clone, Copy, PartialEq)]
enum Compare {
    Text,
    /// Parsed as f64: equal, sign of zero included.
    Double,
    /// FLOAT: MariaDB prints 6 significant digits.
    Float,
    /// BIT(n > 1): the lake holds the bytes least significant first, MariaDB's HEX() prints
    /// them most significant first.
    ReversedHex,
}

const WALL: &str =
    "to_char(arrow_cast({c}, 'Timestamp(Microsecond, None)'), '%Y-%m-%d %H:%M:%S.%6f')";

const COLUMNS: &[Column] = &[
    Column {
        name: "tiny",
        ddl: "TINYINT",
        values: &["-128", "127", "0", "-1"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "tiny_u",
        ddl: "TINYINT UNSIGNED",
        values: &["0", "255", "128"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "small",
        ddl: "SMALLINT",
        values: &["-32768", "32767", "0"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "small_u",
        ddl: "SMALLINT UNSIGNED",
        values: &["0", "65535"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "medium",
        ddl: "MEDIUMINT",
        values: &["-8388608", "8388607", "-1"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "medium_u",
        ddl: "MEDIUMINT UNSIGNED",
        values: &["0", "16777215"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "i",
        ddl: "INT",
        values: &["-2147483648", "2147483647", "0"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "i_u",
        ddl: "INT UNSIGNED",
        values: &["0", "4294967295", "2147483648"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "big",
        ddl: "BIGINT",
        values: &["-9223372036854775808", "9223372036854775807", "0", "-1"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "big_u",
        ddl: "BIGINT UNSIGNED",
        values: &["0", "18446744073709551615", "9223372036854775808"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "dec38",
        ddl: "DECIMAL(38,10)",
        values: &[
            "9999999999999999999999999999.9999999999",
            "-9999999999999999999999999999.9999999999",
            "0",
            "-0.0000000001",
            "1.5",
        ],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "dec65",
        ddl: "DECIMAL(65,30)",
        values: &[
            "99999999999999999999999999999999999.999999999999999999999999999999",
            "-99999999999999999999999999999999999.999999999999999999999999999999",
            "-0.000000000000000000000000000001",
            "0",
            "12.5",
        ],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "dec0",
        ddl: "DECIMAL(20,0)",
        values: &["99999999999999999999", "-99999999999999999999", "0"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "f",
        ddl: "FLOAT",
        values: &[
            "3.40282e38",
            "-3.40282e38",
            "1.17549e-38",
            "0",
            "-1.5",
            "0.1",
        ],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Float,
    },
    Column {
        name: "d",
        ddl: "DOUBLE",
        values: &[
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "2.2250738585072014e-308",
            "4.9e-324",
            "-0.0",
            "0.1",
            "0",
        ],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Double,
    },
    Column {
        name: "bit1",
        ddl: "BIT(1)",
        values: &["b'0'", "b'1'"],
        source: "CASE WHEN {c} IS NULL THEN NULL WHEN {c} = 1 THEN 'true' ELSE 'false' END",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "bit64",
        ddl: "BIT(64)",
        values: &[
            "b'1111111111111111111111111111111111111111111111111111111111111111'",
            "b'0'",
            "b'1000000000000000000000000000000000000000000000000000000000000001'",
            "b'101'",
        ],
        source: "LPAD(HEX({c}), 16, '0')",
        lake: "encode({c}, 'hex')",
        compare: Compare::ReversedHex,
    },
    Column {
        name: "day",
        ddl: "DATE",
        values: &[
            "'1000-01-01'",
            "'9999-12-31'",
            "'0000-00-00'",
            "'2024-02-29'",
            "'1970-01-01'",
        ],
        source: "NULLIF({c}, '0000-00-00')",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "dt0",
        ddl: "DATETIME",
        values: &[
            "'1000-01-01 00:00:00'",
            "'9999-12-31 23:59:59'",
            "'0000-00-00 00:00:00'",
            "'2262-04-11 23:47:17'",
        ],
        source: "DATE_FORMAT(NULLIF({c}, '0000-00-00 00:00:00'), '%Y-%m-%d %H:%i:%s.%f')",
        lake: WALL,
        compare: Compare::Text,
    },
    Column {
        name: "dt6",
        ddl: "DATETIME(6)",
        values: &[
            "'9999-12-31 23:59:59.999999'",
            "'1000-01-01 00:00:00.000000'",
            "'2262-04-11 23:47:16.854776'",
            "'1677-09-21 00:12:43.145224'",
            "'1970-01-01 00:00:00.000001'",
        ],
        source: "DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')",
        lake: WALL,
        compare: Compare::Text,
    },
    Column {
        name: "ts6",
        ddl: "TIMESTAMP(6) NULL DEFAULT NULL",
        values: &[
            "'1970-01-01 00:00:01.000000'",
            "'2038-01-19 03:14:07.999999'",
            "'2000-02-29 12:00:00.5'",
        ],
        source:
            "DATE_FORMAT(CONVERT_TZ({c}, @@session.time_zone, '+00:00'), '%Y-%m-%d %H:%i:%s.%f')",
        lake: WALL,
        compare: Compare::Text,
    },
    Column {
        name: "tm",
        ddl: "TIME(6)",
        values: &[
            "'-838:59:59.000000'",
            "'838:59:59.000000'",
            "'-00:00:00.000001'",
            "'00:00:00'",
            "'24:00:00.5'",
        ],
        source: "CAST(TIME_TO_SEC({c}) * 1000000 AS SIGNED)",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "yr",
        ddl: "YEAR",
        values: &["1901", "2155", "0"],
        source: "{c} + 0",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "ch",
        ddl: "CHAR(10)",
        values: &["''", "'x'", "'🐬'", "'ÿ'"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "vc",
        ddl: "VARCHAR(100)",
        values: &["''", "'héllo wörld'", "'𝄞🐬'", "'it''s \"quoted\"'", "' '"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "txt",
        ddl: "MEDIUMTEXT",
        values: &["''", "REPEAT('m', 70000)", "'✓'"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "vb",
        ddl: "VARBINARY(20)",
        values: &["x''", "x'00ff'", "x'deadbeef00'"],
        source: "LOWER(HEX({c}))",
        lake: "encode({c}, 'hex')",
        compare: Compare::Text,
    },
    Column {
        name: "bl",
        ddl: "BLOB",
        values: &["x'00'", "REPEAT(x'ab', 3000)", "x''"],
        source: "LOWER(HEX({c}))",
        lake: "encode({c}, 'hex')",
        compare: Compare::Text,
    },
    Column {
        name: "en",
        ddl: "ENUM('small','medium','large')",
        values: &["'small'", "'large'"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "st",
        ddl: "SET('a','b','c','d')",
        values: &["''", "'a,d'", "'a,b,c,d'"],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
    Column {
        name: "js",
        ddl: "JSON",
        values: &[
            "'{\"k\": [1, 2.5, \"x\", null, true, false]}'",
            "'[]'",
            "'\"str\"'",
            "'123'",
            "'null'",
            "'-1.5e300'",
            "'{\"a\": {\"b\": -7}}'",
        ],
        source: "{c}",
        lake: "{c}",
        compare: Compare::Text,
    },
];

/// A value of `column`, NULL one time in eight.
fn value(rng: &mut Rng, column: &Column) -> &'static str {
    if rng.below(8) == 0 {
        "NULL"
    } else {
        column.values[rng.below(column.values.len())]
    }
}

fn same(compare: Compare, source: &str, lake: &str) -> bool {
    if source == lake {
        return true;
    }
    if source == "NULL" || lake == "NULL" {
        return false;
    }
    match compare {
        Compare::Text => false,
        Compare::Double | Compare::Float => {
            let (Ok(a), Ok(b)) = (source.parse::<f64>(), lake.parse::<f64>()) else {
                return false;
            };
            if a.is_sign_negative() != b.is_sign_negative() {
                return false;
            }
            if compare == Compare::Double {
                a == b
            } else {
                a == b || ((a - b) / a).abs() < 1e-5
            }
        }
        Compare::ReversedHex => {
            let bytes: Vec<&str> = (0..lake.len())
                .step_by(2)
                .map(|i| &lake[i..i + 2])
                .rev()
                .collect();
            format!("{:0>16}", bytes.concat()).eq_ignore_ascii_case(source)
        }
    }
}

#[test]
fn rows_at_every_types_boundaries_reach_silver_exactly() {
    let seed: u64 = std::env::var("BINLAKE_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let db = MariaDb::start();
    let ddl: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("`{}` {}", c.name, c.ddl))
        .collect();
    let mut sql = format!(
        "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'; SET SESSION time_zone = '+00:00'; \
         CREATE DATABASE prop; CREATE TABLE prop.t (id INT PRIMARY KEY, {}) DEFAULT CHARSET = utf8mb4;\n",
        ddl.join(", ")
    );
    let rows = 120;
    let names: Vec<String> = COLUMNS.iter().map(|c| format!("`{}`", c.name)).collect();
    for id in 1..=rows {
        let values: Vec<&str> = COLUMNS.iter().map(|c| value(&mut rng, c)).collect();
        sql.push_str(&format!(
            "INSERT INTO prop.t (id, {}) VALUES ({id}, {});\n",
            names.join(", "),
            values.join(", ")
        ));
    }
    // Updates of a few columns or of the whole row, and deletes, at random.
    for _ in 0..rows {
        let id = 1 + rng.below(rows);
        match rng.below(4) {
            0 => sql.push_str(&format!("DELETE FROM prop.t WHERE id = {id};\n")),
            1 => {
                let sets: Vec<String> = COLUMNS
                    .iter()
                    .map(|c| format!("`{}` = {}", c.name, value(&mut rng, c)))
                    .collect();
                sql.push_str(&format!(
                    "UPDATE prop.t SET {} WHERE id = {id};\n",
                    sets.join(", ")
                ));
            }
            _ => {
                let c = &COLUMNS[rng.below(COLUMNS.len())];
                sql.push_str(&format!(
                    "UPDATE prop.t SET `{}` = {} WHERE id = {id};\n",
                    c.name,
                    value(&mut rng, c)
                ));
            }
        }
    }
    db.sql(&sql);
    let select = |side: fn(&Column) -> &'static str| {
        COLUMNS
            .iter()
            .map(|c| side(c).replace("{c}", &format!("`{}`", c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let expected = source_rows(
        &db,
        &format!(
            "SELECT id, {} FROM prop.t ORDER BY id",
            select(|c| c.source)
        ),
    );
    assert!(!expected.is_empty());
    for readers in ["fabric", "modern"] {
        let dir = tempfile::tempdir().unwrap();
        // Small batches: later ones replace and delete rows earlier ones wrote.
        let config = Scenario::source(&db, 4630)
            .include("prop.*")
            .transport("kind = \"embedded\"")
            .lake(&format!(
                "url = \"lake\"\nmax_rows = 16\nmax_latency_ms = 200\nreaders = \"{readers}\""
            ))
            .write(dir.path(), "run.toml");
        let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "seed {seed}, {readers}: {stderr}");
        let lake = dir.path().join("lake");
        assert!(
            !lake.join("dead_letters").exists(),
            "seed {seed}, {readers}: nothing went to dead letters"
        );
        let silver = lake_query(
            &table_url(&lake, "silver/prop/t"),
            &[],
            &format!(
                "SELECT id, {} FROM t ORDER BY id",
                select(|c| c.lake).replace('`', "\"")
            ),
        );
        assert_eq!(
            silver.len(),
            expected.len(),
            "seed {seed}, {readers}: row count"
        );
        for (want, got) in expected.iter().zip(&silver) {
            let want: Vec<&str> = want.split('|').collect();
            let got: Vec<&str> = got.split('|').collect();
            assert_eq!(want[0], got[0], "seed {seed}, {readers}: ids");
            for (i, c) in COLUMNS.iter().enumerate() {
                assert!(
                    same(c.compare, want[i + 1], got[i + 1]),
                    "seed {seed}, {readers}: row {}, column {} ({}): MariaDB has {:?}, silver {:?}",
                    want[0],
                    c.name,
                    c.ddl,
                    want[i + 1],
                    got[i + 1]
                );
            }
        }
    }
}
