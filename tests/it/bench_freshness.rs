//! `binlake bench freshness` against a table whose newest row is of a known age.

use std::time::Duration;

use crate::support::lake::{k_record, writer};

/// Rows stamped 5 s and 6 s in the past: the samples are the newest row's age (the median at
/// least 5 s, the largest well under a minute), and the count is the table's.
#[test]
fn freshness_samples_the_age_of_the_newest_visible_row() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let now = binlake::event::now_ms() as i64;
    let (newest, older) = (now - 5_000, now - 6_000);
    let mut w = writer(&lake, true);
    runtime
        .block_on(w.apply(&[
            k_record("c", older, "a", 100, None),
            k_record("c", newest, "b", 110, None),
        ]))
        .unwrap();
    let storage = binlake::lake::storage::LakeStorage::new(
        lake.to_str().unwrap(),
        &Default::default(),
        "/".as_ref(),
    )
    .unwrap();
    let report = runtime
        .block_on(binlake::bench::freshness::measure(
            &storage,
            "silver/shop/k",
            "id",
            Duration::from_millis(400),
        ))
        .unwrap();
    assert!(report.samples >= 1, "{report:?}");
    assert_eq!(report.rows, 2);
    assert!(report.p50_ms >= 5_000, "{report:?}");
    assert!(
        report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms,
        "{report:?}"
    );
    // The polls' age is taken when they find the version: well under a minute on any machine.
    assert!(report.max_ms < 60_000, "{report:?}");
}
