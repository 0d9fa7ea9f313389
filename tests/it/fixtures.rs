//! Every real binlog fixture replayed, with the decoded values asserted.

use binlake::replay::ReplayOptions;
use serde_json::{json, Value};

use crate::{fixture, replay, replay_ok};

fn ops(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["op"].as_str().unwrap()).collect()
}

#[test]
fn mysql8_minimal_metadata_keeps_unsigned_int_above_2_pow_31() {
    let ev = replay_ok("binlogs/mysql-8/minimal_row_metadata.000001");
    assert_eq!(ev.len(), 1);
    // MINIMAL row image: only the columns the INSERT set are present.
    assert_eq!(
        ev[0]["after"],
        json!({"_0": 1, "_2": "a", "_4": 3230202323u64})
    );
    assert_eq!(ev[0]["source"]["db"], "noria");
    assert_eq!(ev[0]["source"]["table"], "t1");
}

#[test]
fn schema_file_names_columns_of_a_minimal_metadata_binlog() {
    let options = ReplayOptions {
        schema_files: vec![fixture("schemas/noria.sql")],
        ..Default::default()
    };
    let (ev, result) = replay(&["binlogs/mysql-8/minimal_row_metadata.000001"], &options);
    result.unwrap();
    assert_eq!(
        ev[0]["after"],
        json!({"id": 1, "label": "a", "big": 3230202323u64})
    );
}

#[test]
fn mysql8_negative_time_beyond_24_hours() {
    let ev = replay_ok("binlogs/mysql-8/time_issue.000001");
    // -21 days 03:48:27 = -507:48:27, as MicroTime.
    assert_eq!(
        ev[0]["after"]["_0"],
        json!(-((507i64 * 3600 + 48 * 60 + 27) * 1_000_000))
    );
}

#[test]
fn mysql8_bit_columns() {
    let ev = replay_ok("binlogs/mysql-8/mysql_type_bit.000001");
    // BIT(3) = 0b100 and BIT(8) = 0b100000, as Debezium's little-endian bytes in base64.
    assert_eq!(
        ev[0]["after"],
        json!({"a": "BA==", "b": "foo", "c": "IA=="})
    );
    assert_eq!(
        ev[0]["source"]["gtid"],
        "fbda2ad0-7c46-11ec-ae30-4ef7efc81a2a:3"
    );
}

#[test]
fn mysql8_enum_set_char_varchar_text_insert_update_delete() {
    let ev = replay_ok("binlogs/mysql-8/mysql-enum-string-set.000001");
    assert_eq!(ops(&ev), ["c", "u", "d"]);
    let first = &ev[0]["after"];
    assert_eq!(first["f3"], "var1");
    assert_eq!(first["f4"], "one,three");
    assert_eq!(first["f5"], "0123456789");
    assert_eq!(first["f1"].as_str().unwrap().len(), 100);
    assert_eq!(first["f2"].as_str().unwrap().len(), 298);
    assert_eq!(ev[1]["before"], ev[0]["after"]);
    let updated = &ev[1]["after"];
    assert_eq!(updated["f1"], "field1");
    assert_eq!(updated["f2"], "field_2");
    assert_eq!(updated["f3"], "variant2");
    assert_eq!(updated["f4"], "two,four");
    assert_eq!(ev[2]["before"], ev[1]["after"]);
    assert_eq!(ev[2]["after"], Value::Null);
}

#[test]
fn mysql8_zstd_transaction_payloads() {
    let ev = replay_ok("binlogs/mysql-8/transaction_compression.000001");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["source"]["table"], "tb1");
    assert_eq!(ev[0]["after"], json!({"_0": 1}));

    let ev = replay_ok("binlogs/mysql-8/mysql-bin.compressed");
    assert_eq!(ops(&ev), ["u"]);
    assert_eq!(ev[0]["source"]["table"], "movies");
    assert_eq!(ev[0]["before"]["_1"], "Once Upon a Time in the West");
    assert_eq!(ev[0]["before"]["_2"], 1968);
    assert_eq!(ev[0]["before"]["_4"], "Western");
    assert_eq!(ev[0]["after"]["_4"], "Western|Action");

    let ev = replay_ok("binlogs/mysql-8/mysql-bin.000057");
    assert_eq!(ops(&ev), ["c", "u", "c"]);
    assert_eq!(ev[0]["source"]["query"], "insert into b values(1)");
    assert_eq!(
        ev[1]["source"]["gtid"],
        "76f3e7be-6720-11ed-9cad-0242ac110002:13"
    );
    // Two rows events inside one payload: same position, rows numbered across the payload.
    assert_eq!(ev[1]["source"]["pos"], ev[2]["source"]["pos"]);
    assert_eq!(ev[1]["source"]["row"], 0);
    assert_eq!(ev[2]["source"]["row"], 1);
    assert_eq!(ev[1]["before"]["_0"], 55555);
    assert_eq!(ev[1]["before"]["_9"], "{\"c\":1}");
    assert_eq!(ev[2]["after"]["_0"], 6666);
    assert_eq!(ev[2]["transaction"]["total_order"], 2);
}

#[test]
fn mysql8_json_documents_and_generated_columns() {
    let (ev, result) = replay(
        &["binlogs/mysql-8/json.binlog.000001"],
        &ReplayOptions::default(),
    );
    assert_eq!(
        ev.len(),
        12,
        "every change before the partial update is printed"
    );
    assert_eq!(
        ev[0]["after"],
        json!({"id": 1, "json_col": "{\"age\":24,\"data\":\"xxxxxxxxxx\",\"name\":\"Joe\"}", "name": "Joe", "age": 24})
    );
    assert_eq!(
        ev[11]["after"]["json_col"],
        "{\"age\":41,\"data\":\"zzzzzzzzzz\",\"name\":\"Pete\"}"
    );
    // The PARTIAL_UPDATE_ROWS event was written with binlog_row_image=MINIMAL: its before
    // image has only the key, so the JSON diff has nothing to apply to.
    let err = result.unwrap_err();
    assert!(err.contains("json.binlog.000001 at byte 3750"), "{err}");
    assert!(err.contains("PARTIAL_UPDATE_ROWS"), "{err}");
    assert!(err.contains("json_col"), "{err}");
    assert!(err.contains("binlog_row_image=MINIMAL"), "{err}");
}

#[test]
fn mysql9_json_opaque_values() {
    let ev = replay_ok("binlogs/mysql-8/json-opaque.binlog");
    let docs: Vec<&str> = ev
        .iter()
        .map(|e| e["after"]["a"].as_str().unwrap())
        .collect();
    assert_eq!(
        docs,
        [
            r#"{"a":"base64:type15:VQ=="}"#,
            r#"{"b":"2012-03-18"}"#,
            r#"{"c":"2012-03-18 11:30:45.000000"}"#,
            r#"{"c":"87:31:46.654321"}"#,
            r#"{"d":123.456}"#,
            r#"{"e":9.00}"#,
            r#"{"e":[0,1,true,false]}"#,
            r#"{"e":null}"#,
        ]
    );
}

#[test]
fn mysql9_vectors() {
    let ev = replay_ok("binlogs/mysql-8/vector.binlog");
    assert_eq!(ev.len(), 10);
    assert_eq!(
        ev[0]["after"],
        json!({"id": 1, "vector_column": [1.1, 2.2, 3.3]})
    );
    assert_eq!(
        ev[3]["after"],
        json!({"id": 2, "vector_column": [1.01, -1.01], "foo": "YmFy", "vector_column2": [42.0, 43.0, 44.0, 45.0]})
    );
    assert_eq!(ev[8]["op"], "d");
}

#[test]
fn mysql9_tagged_gtid() {
    let ev = replay_ok("binlogs/mysql-8/binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0]["source"]["gtid"],
        "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"
    );
    assert_eq!(
        ev[0]["transaction"]["id"],
        "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"
    );
    assert_eq!(ev[0]["after"], json!({"_0": 3, "_1": 100, "_2": "250.00"}));
}

#[test]
fn mysql8_invisible_columns_and_previous_gtids_only() {
    let ev = replay_ok("binlogs/mysql-8/binlog-invisible-columns.000001");
    assert_eq!(ops(&ev), ["c", "c", "u"]);
    assert_eq!(
        ev[0]["after"],
        json!({"f1": 1, "f2": 2, "f3": -3, "f4": "4", "f5": "BQ==", "f6": 6000000000u64})
    );
    assert_eq!(ev[2]["after"]["f1"], 111);
    assert!(replay_ok("binlogs/mysql-8/binlog_transaction_previous_GTID_no_tag.000001").is_empty());
}

#[test]
fn mariadb_10_11_gtid_annotate_and_full_metadata() {
    let ev = replay_ok("binlogs/mariadb/mariadb-10.11-gtid.000001");
    assert_eq!(ops(&ev), ["c", "c", "u", "d"]);
    assert_eq!(
        ev[0]["after"],
        json!({"id": 1, "name": "one", "j": "{\"k\":1}", "d": "1.50", "ts": "2024-01-01T00:00:00.123Z", "e": "x"})
    );
    assert_eq!(
        ev[1]["after"],
        json!({"id": 2, "name": "two", "j": null, "d": "2.25", "ts": null, "e": "y"})
    );
    assert_eq!(ev[2]["after"]["name"], "uno");
    assert_eq!(ev[3]["before"]["id"], 2);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["source"]["gtid"], "0-1-3");
        assert_eq!(e["transaction"]["total_order"], i as u64 + 1);
    }
    assert_eq!(
        ev[2]["source"]["query"],
        "UPDATE t.a SET name='uno' WHERE id=1"
    );
}

#[test]
fn mariadb_compressed_query_and_rows_events() {
    let ev = replay_ok("binlogs/mariadb/mariadb-10.11-compressed.000002");
    assert_eq!(ops(&ev), ["c", "c", "u", "d"]);
    assert_eq!(ev[0]["after"]["v"], "a".repeat(2000));
    assert_eq!(ev[1]["after"]["v"], "b".repeat(2000));
    assert_eq!(ev[2]["after"]["v"], "c".repeat(2000));
    assert_eq!(ev[3]["before"]["id"], 2);
    assert_eq!(ev[0]["source"]["gtid"], "0-1-5");
}

#[test]
fn mariadb_10_5_and_10_0() {
    let ev = replay_ok("binlogs/mariadb/mariadb-10.5-full-metadata.000001");
    assert_eq!(ev.len(), 2);
    // `event` is a BLOB (collation 63 in the table map): base64 of {"foo":1}.
    assert_eq!(
        ev[0]["after"],
        json!({"id": 62, "topic": "foo", "event_type": "JSON", "event": "eyJmb28iOjF9", "created": "2022-04-20T22:18:04Z"})
    );
    assert_eq!(ev[0]["source"]["gtid"], "0-1-1");
    assert_eq!(ev[1]["source"]["gtid"], "0-1-2");

    let ev = replay_ok("binlogs/mariadb/mariadb-10.0-no-checksum.000001");
    assert_eq!(ev.len(), 2);
    assert_eq!(
        ev[0]["after"],
        json!({"dept_no": "ABC", "dept_name": "DEF"})
    );
    assert_eq!(
        ev[1]["after"],
        json!({"dept_no": "RST", "dept_name": "XYZ"})
    );
    assert_eq!(ev[0]["source"]["gtid"], "0-3704-2816");
}

#[test]
fn mysql57_crc32_and_no_checksum_files() {
    let ev = replay_ok("binlogs/mysql-5.7/mysql-bin.checksum-crc32");
    assert_eq!(ev.len(), 63);
    assert_eq!(ev[0]["source"]["table"], "folder");
    assert_eq!(ev[0]["after"]["_1"], "test2");
    let renamed = ev
        .iter()
        .find(|e| e["op"] == "u" && e["source"]["table"] == "file")
        .unwrap();
    assert_eq!(renamed["after"]["_1"], "陶瓷.jpg");
    assert_eq!(ev[0]["source"]["thread"], 18);

    let ev = replay_ok("binlogs/mysql-5.7/mysql-bin.checksum-none");
    assert_eq!(ev.len(), 36);
    // Column names come from the CREATE TABLE met earlier in the same binlog.
    assert_eq!(ev[0]["source"]["table"], "account");
    assert_eq!(ev[0]["after"]["id"], "42b0a771-9345-4b19-b503-d51b5fff30ef");
    assert_eq!(ev[0]["after"]["nickname"], "test_nickname");
}

#[test]
fn mysql57_decimal_65_digits_and_bigint() {
    let ev = replay_ok("binlogs/mysql-5.7/mysqlcdc-sample.000001");
    assert_eq!(ev.len(), 3);
    let a = &ev[0]["after"];
    assert_eq!(a["_5"], 1234567890987654321u64);
    assert_eq!(
        a["_8"],
        "1234567890112233445566778899001112223334445556667778889.9900011112"
    );
    assert_eq!(a["_7"], 123456789.09876543);
    assert_eq!(a["_12"], "{\"id\":1,\"name\":\"John\"}");
    assert_eq!(a["_21"], "1985-10-13T10:22:23.567Z");
}

#[test]
fn mysql57_gtids_ddl_and_utf8mb4_table() {
    let ev = replay_ok("binlogs/mysql-5.7/mysql-bin.000080");
    assert_eq!(ops(&ev), ["d", "d", "d", "d", "c", "c", "c"]);
    assert_eq!(
        ev[0]["source"]["gtid"],
        "58cf6502-63db-11ed-8079-0242ac110002:53"
    );
    assert_eq!(ev[6]["source"]["table"], "emoji");
    assert_eq!(ev[6]["after"], json!({"id": 2, "value": ""}));
}

#[test]
fn mysql55_sakila_gzip_with_schema_from_binlog_ddl() {
    let ev = replay_ok("binlogs/mysql-5.5/mysql-bin.sakila.gz");
    assert_eq!(ev.len(), 47273);
    assert!(ev.iter().all(|e| e["op"] == "c"));
    assert_eq!(ev[0]["source"]["file"], "mysql-bin.sakila");
    assert_eq!(
        ev[0]["after"],
        json!({"actor_id": 1, "first_name": "PENELOPE", "last_name": "GUINESS", "last_update": "2006-02-15T03:34:33Z"})
    );
    let customers = ev
        .iter()
        .filter(|e| e["source"]["table"] == "customer")
        .count();
    assert_eq!(customers, 599);
    // Positions strictly increase through the file.
    let positions: Vec<(u64, u64)> = ev
        .iter()
        .map(|e| {
            (
                e["source"]["pos"].as_u64().unwrap(),
                e["source"]["row"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn not_a_binlog_is_refused_by_name() {
    let (ev, result) = replay(
        &["binlogs/not-a-binlog/public-key.pem"],
        &ReplayOptions::default(),
    );
    assert!(ev.is_empty());
    let err = result.unwrap_err();
    assert!(err.contains("public-key.pem: not a binlog file"), "{err}");
    assert!(err.contains("found 2d 2d 2d 2d"), "{err}");
}

#[test]
fn ddl_carries_over_between_files_of_one_replay() {
    // The account table's CREATE is in checksum-none; replaying a file after it keeps the names.
    let (ev, result) = replay(
        &[
            "binlogs/mysql-5.7/mysql-bin.checksum-none",
            "binlogs/mysql-5.7/mysqlcdc-sample.000001",
        ],
        &ReplayOptions::default(),
    );
    result.unwrap();
    assert_eq!(ev.len(), 39);
    assert_eq!(ev[36]["source"]["file"], "mysqlcdc-sample.000001");
}

#[test]
fn mariadb_generated_all_types_fixture() {
    let ev = replay_ok("binlogs/mariadb/mariadb-all-types.000001");
    assert_eq!(ev.len(), 26);
    let first = &ev[0]["after"];
    assert_eq!(first["t_big_u"], 18446744073709551615u64);
    assert_eq!(first["t_big"], i64::MIN);
    assert_eq!(
        first["t_dec_big"],
        "12345678901234567890123456789012345.123456789012345678901234567890"
    );
    assert_eq!(first["t_varchar"], "héllo wörld ✓ 𝄞");
    assert_eq!(first["t_time0"], -3_020_399_000_000i64);
    assert_eq!(first["t_dt6"], 253_402_300_799_999_999i64);
    assert_eq!(first["t_ts6"], "2038-01-19T03:14:07.999999Z");
    assert_eq!(first["t_bit64"], "//////////8=");
    assert_eq!(
        first["t_geo"],
        json!({"wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAALA", "srid": 4326})
    );
    assert_eq!(first["t_mediumtext"].as_str().unwrap().len(), 70000);
    // BINARY(4) = 00 00 00 00 arrives with its zero bytes stripped; it is padded back.
    assert_eq!(ev[1]["after"]["t_binary"], "AAAAAA==");
    assert_eq!(ev[1]["after"]["t_time6"], -1);
    // Zero dates are null; YEAR 0 stays 0.
    assert_eq!(ev[3]["after"]["t_date"], Value::Null);
    assert_eq!(ev[3]["after"]["t_year"], 0);
    let truncate = ev.iter().find(|e| e["op"] == "t").unwrap();
    assert_eq!(truncate["source"]["table"], "truncated");
    assert_eq!(truncate["before"], Value::Null);
    let latin = ev.iter().find(|e| e["source"]["table"] == "latin").unwrap();
    assert_eq!(latin["after"]["note"], "Grüße, €uro");
}

#[test]
fn mysql_executed_gtid_set_follows_previous_gtids_and_commits() {
    use binlake::mysql::decoder::{Commit, DecodeSink};
    use binlake::mysql::gtid::GtidSet;
    use binlake::mysql::schema::SchemaTracker;
    use binlake::mysql::{BinlogDecoder, BinlogError, BinlogFileReader};

    struct Executed(GtidSet);
    impl DecodeSink for Executed {
        type Error = BinlogError;
        fn change(&mut self, _: &binlake::event::ChangeEvent<'_>) -> Result<(), BinlogError> {
            Ok(())
        }
        fn commit(&mut self, c: &Commit) -> Result<(), BinlogError> {
            if let Some(g) = &c.gtid {
                self.0.add(g).unwrap();
            }
            Ok(())
        }
        fn previous_gtids(&mut self, set: &GtidSet) -> Result<(), BinlogError> {
            self.0.union(set);
            Ok(())
        }
    }
    for (rel, expected) in [
        ("binlogs/mysql-5.7/mysql-bin.000080", "58cf6502-63db-11ed-8079-0242ac110002:1-62"),
        (
            "binlogs/mysql-8/binlog_transaction_with_GTID_TAG.000001",
            "55778904-0299-11f1-b1b8-4ef0c4956feb:1-13,55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:1-3",
        ),
    ] {
        let mut reader = BinlogFileReader::open(&fixture(rel)).unwrap();
        let mut decoder = BinlogDecoder::new(reader.name().clone(), SchemaTracker::new());
        let mut sink = Executed(GtidSet::default());
        while let Some(ev) = reader.next_event().unwrap() {
            decoder.decode(&ev.header, ev.body, ev.offset, &mut sink).unwrap();
        }
        assert_eq!(sink.0.to_string(), expected, "{rel}");
    }
}
