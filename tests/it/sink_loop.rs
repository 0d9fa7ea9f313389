//! The sink loop in this process, fed through the embedded channel (no server, no binary):
//! batches collected (and decoded, with `decode_ahead`) while the one before is applied still
//! commit in order, a
//! mark is answered only once its changes are committed, and a flush at once; a busy batch
//! commits sooner than a thin one.

use std::sync::mpsc::sync_channel;
use std::time::Duration;

use binlake::transport::embedded::{channel, Handoff};

use crate::support::lake::{k_record, keyed_by_id, lake_query, record_of, table_url, writer_with};

/// Runs the sink loop over `rx` on a two-worker runtime until the channel ends.
fn sink_until_end(
    writer: &mut binlake::lake::writer::LakeWriter,
    rx: binlake::transport::embedded::HandoffReceiver,
) -> Result<binlake::pipeline::SinkStats, binlake::pipeline::PipelineError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(binlake::pipeline::sink_embedded(writer, rx, None, None))
}

#[test]
fn batches_commit_in_order_and_marks_wait_for_their_changes() {
    for decode_ahead in [false, true] {
        batches_in_order(decode_ahead);
    }
}

fn batches_in_order(decode_ahead: bool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let settings = binlake::lake::config::LakeConfig {
        max_rows: 10,
        max_latency_ms: 200,
        decode_ahead,
        ..Default::default()
    };
    let mut writer = writer_with(&lake, settings);
    let (tx, rx) = channel();
    let silver_url = table_url(&lake, "silver/shop/k");
    let silver = |sql: &str| lake_query(&silver_url, &[], sql);
    let sender = std::thread::spawn({
        let silver_url = silver_url.clone();
        move || {
            let silver = |sql: &str| lake_query(&silver_url, &[], sql);
            let mut pos = 0;
            let mut send = |op: &str, id: i64, v: String| {
                pos += 10;
                tx.send(Handoff::Record(k_record(op, id, &v, pos, None)))
                    .unwrap();
            };
            for id in 1..=5 {
                send("c", id, format!("v{id}"));
            }
            // Not a batch's worth: the mark is answered once the batch has aged and committed.
            let (mark, marked) = sync_channel(1);
            tx.send(Handoff::Mark(mark)).unwrap();
            let mark_answer = marked.recv_timeout(Duration::from_secs(60)).unwrap();
            let silver_at_mark = silver("SELECT count(*), sum(id) FROM t");
            // Nine batches of ten, each collected and decoded while the one before is applied:
            // inserts of new keys, and updates of key 1 that must land in order.
            for i in 1..=45 {
                send("c", 5 + i, format!("v{}", 5 + i));
                send("u", 1, format!("u{i}"));
            }
            let (flush, flushed) = sync_channel(1);
            tx.send(Handoff::Flush(flush)).unwrap();
            let flush_answer = flushed.recv_timeout(Duration::from_secs(60)).unwrap();
            let silver_at_flush = silver("SELECT count(*), sum(id) FROM t");
            tx.send(Handoff::End).unwrap();
            (mark_answer, silver_at_mark, flush_answer, silver_at_flush)
        }
    });
    let stats = sink_until_end(&mut writer, rx).unwrap();
    let (mark_answer, silver_at_mark, flush_answer, silver_at_flush) = sender.join().unwrap();
    assert_eq!(mark_answer, Ok(()));
    assert_eq!(
        silver_at_mark,
        ["5|15"],
        "the mark's five changes were committed"
    );
    assert_eq!(flush_answer, Ok(()));
    assert_eq!(
        silver_at_flush,
        ["50|1275"],
        "everything before the flush was committed"
    );
    assert_eq!(
        (stats.records, stats.batches, stats.busy_batches),
        (95, 10, 0)
    );
    assert_eq!(
        silver("SELECT id, v FROM t WHERE id IN (1, 2, 50) ORDER BY id"),
        ["1|u45", "2|v2", "50|v50"]
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/k__history"),
            &[],
            "SELECT count(*), count(*) FILTER (WHERE id = 1), \
             count(*) FILTER (WHERE id = 1 AND __end_position IS NULL), \
             max(v) FILTER (WHERE id = 1 AND __end_position IS NULL) FROM t"
        ),
        ["95|46|1|u45"],
        "history: every version once, key 1's in order with the last one open"
    );
}

/// A batch with `busy_changes_per_table` records for each table it touches commits once its
/// first record is `busy_latency_ms` old, long before `max_latency_ms` (a minute here); a batch
/// spread thinner over two tables waits. A mark is answered once its batch is committed.
#[test]
fn a_busy_batch_commits_at_busy_latency_and_a_thin_one_waits_for_max_latency() {
    use binlake::event::{Column, ColumnType};
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let settings = binlake::lake::config::LakeConfig {
        max_latency_ms: 60_000,
        busy_latency_ms: 50,
        busy_changes_per_table: 3,
        ..Default::default()
    };
    let mut writer = writer_with(&lake, settings);
    let k_url = table_url(&lake, "silver/shop/k");
    let k2_url = table_url(&lake, "silver/shop/k2");
    let k2 = keyed_by_id(
        "shop",
        "k2",
        Column::new("v", ColumnType::VarChar { max_bytes: 40 }),
    );
    let (tx, rx) = channel();
    let sender = std::thread::spawn({
        let (k_url, k2_url) = (k_url.clone(), k2_url.clone());
        move || {
            let count = |url: &str| lake_query(url, &[], "SELECT count(*) FROM t");
            let mark = |tx: &binlake::transport::embedded::HandoffSender, wait_secs| {
                let (mark, marked) = sync_channel(1);
                tx.send(Handoff::Mark(mark)).unwrap();
                marked.recv_timeout(Duration::from_secs(wait_secs))
            };
            let insert_k = |id: i64, v: &str| {
                tx.send(Handoff::Record(k_record("c", id, v, 10 * id as u64, None)))
                    .unwrap()
            };
            for id in 1..=3 {
                insert_k(id, "busy");
            }
            let busy = mark(&tx, 30);
            assert_eq!(busy, Ok(Ok(())), "three records of one table: busy");
            let k_after_busy = count(&k_url);
            // Four records over two tables: two a table, under three.
            for id in 4..=5 {
                insert_k(id, "thin");
            }
            for id in 1..=2 {
                let row = serde_json::json!({"id": id, "v": "thin"});
                let pos = 100 + 10 * id as u64;
                tx.send(Handoff::Record(record_of(
                    k2.clone(),
                    "c",
                    serde_json::Value::Null,
                    row,
                    pos,
                    None,
                )))
                .unwrap();
            }
            let thin = mark(&tx, 2);
            let k_while_thin = count(&k_url);
            let (flush, flushed) = sync_channel(1);
            tx.send(Handoff::Flush(flush)).unwrap();
            let flush_answer = flushed.recv_timeout(Duration::from_secs(60)).unwrap();
            let after_flush = (count(&k_url), count(&k2_url));
            tx.send(Handoff::End).unwrap();
            (k_after_busy, thin, k_while_thin, flush_answer, after_flush)
        }
    });
    let stats = sink_until_end(&mut writer, rx).unwrap();
    let (k_after_busy, thin, k_while_thin, flush_answer, after_flush) = sender.join().unwrap();
    assert_eq!(k_after_busy, ["3"]);
    assert_eq!(
        thin,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout),
        "two records a table is not busy: no commit before max_latency_ms"
    );
    assert_eq!(k_while_thin, ["3"]);
    assert_eq!(flush_answer, Ok(()));
    assert_eq!(after_flush, (vec!["5".to_string()], vec!["2".to_string()]));
    assert_eq!(
        (stats.records, stats.batches, stats.busy_batches),
        (7, 2, 1),
        "the busy batch, then the flushed one"
    );
}

/// Under `on_unappliable = "stop"`, a mark after a change the lake cannot take (a value out of
/// its INT column's range) is answered with the stop, naming table, column and value: the
/// embedded source's checkpoint then fails instead of moving past the change. The change before
/// it is applied; the sink ends with the same stop.
#[test]
fn a_mark_after_a_change_the_lake_cannot_take_is_answered_with_the_stop() {
    use binlake::event::{Column, ColumnType};
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut writer = writer_with(&lake, Default::default());
    let schema = keyed_by_id("shop", "n", Column::new("n", ColumnType::Int));
    let (tx, rx) = channel();
    let sender = std::thread::spawn(move || {
        let insert = |pos: u64, id: i64, n: i64| {
            let row = serde_json::json!({"id": id, "n": n});
            Handoff::Record(record_of(
                schema.clone(),
                "c",
                serde_json::Value::Null,
                row,
                pos,
                None,
            ))
        };
        tx.send(insert(10, 1, 5)).unwrap();
        tx.send(insert(20, 2, 99_999_999_999)).unwrap();
        let (mark, marked) = sync_channel(1);
        tx.send(Handoff::Mark(mark)).unwrap();
        let answer = marked.recv_timeout(Duration::from_secs(60)).unwrap();
        tx.send(Handoff::End).unwrap();
        answer
    });
    let sunk = sink_until_end(&mut writer, rx);
    let answer = sender.join().unwrap().expect_err("the mark fails");
    for part in ["shop.n", "column n", "99999999999"] {
        assert!(answer.contains(part), "{part} in {answer}");
    }
    let stopped = sunk.expect_err("the sink ends with the stop").to_string();
    assert_eq!(stopped, answer);
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/n"),
            &[],
            "SELECT id, n FROM t ORDER BY id"
        ),
        ["1|5"],
        "the change before the bad one is applied, the bad one is not"
    );
}
