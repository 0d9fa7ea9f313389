//! The mutation corpus: every fixture truncated at every offset and with single bits flipped.
//! Corrupt input must give an error naming the file (and, past the header, the byte offset),
//! never a panic; every change before the fault must already be written.

use std::panic::{catch_unwind, AssertUnwindSafe};

use binlake::replay::{replay_bytes, ReplayOptions};

use crate::fixture;

struct Fixture {
    name: String,
    bytes: Vec<u8>,
    /// Offsets where events start (and where the file may cleanly end).
    boundaries: Vec<usize>,
}

fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for dir in ["mysql-5.7", "mysql-8", "mariadb"] {
        let mut entries: Vec<_> = std::fs::read_dir(fixture("binlogs").join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let bytes = std::fs::read(&path).unwrap();
            // The large generated all-types file repeats formats the small files already cover;
            // mutating it would only make the suite slow.
            if bytes.len() > 200_000 {
                continue;
            }
            let mut boundaries = vec![4];
            let mut at = 4;
            while at + 19 <= bytes.len() {
                let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
                at += size;
                boundaries.push(at);
            }
            out.push(Fixture {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
                boundaries,
            });
        }
    }
    assert!(out.len() >= 20, "fixtures missing");
    out
}

fn run(name: &str, bytes: &[u8], verify: bool) -> (Vec<String>, Result<(), String>) {
    let options = ReplayOptions {
        no_verify_checksums: !verify,
        ..Default::default()
    };
    let mut out = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        replay_bytes(name, bytes, &options, &mut out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|_| panic!("{name}: replay panicked"));
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (lines, result)
}

fn step(len: usize) -> usize {
    (len / 2500).max(1)
}

#[test]
fn truncation_anywhere_is_an_error_after_everything_before_it() {
    for f in fixtures() {
        let (full, full_result) = run(&f.name, &f.bytes, true);
        for cut in (0..f.bytes.len()).step_by(step(f.bytes.len())) {
            let (lines, result) = run(&f.name, &f.bytes[..cut], true);
            assert!(
                full.starts_with(&lines),
                "{} cut at {cut}: output is not a prefix of the full replay",
                f.name
            );
            if cut < 4 {
                let err = result.unwrap_err();
                assert!(err.contains("not a binlog file"), "{err}");
            } else if !f.boundaries.contains(&cut) {
                let err = result.expect_err(&format!("{} cut at {cut} must fail", f.name));
                assert!(err.contains(&f.name), "{err}");
                assert!(err.contains(" at byte "), "{err}");
                // Either the cut is met, or the error the whole file has comes first.
                let same_as_full = full_result.as_ref().err() == Some(&err);
                assert!(
                    err.contains("truncated") || same_as_full,
                    "{} cut at {cut}: {err}",
                    f.name
                );
            }
        }
    }
}

#[test]
fn bit_flips_never_panic_and_crc32_catches_them() {
    for f in fixtures() {
        let (full, full_result) = run(&f.name, &f.bytes, true);
        // The checksum algorithm byte of the FORMAT_DESCRIPTION event: flipping it switches
        // verification off, which no checksum can catch.
        let fde_size = u32::from_le_bytes(f.bytes[13..17].try_into().unwrap()) as usize;
        let alg_offset = 4 + fde_size - 5;
        let has_crc = f.bytes[alg_offset] == 1;
        for i in (4..f.bytes.len()).step_by(step(f.bytes.len())) {
            let mut bytes = f.bytes.clone();
            bytes[i] ^= 1 << (i % 8);
            let (lines, result) = run(&f.name, &bytes, true);
            if has_crc && i != alg_offset && full_result.is_ok() {
                let err =
                    result.expect_err(&format!("{}: flip at byte {i} went unnoticed", f.name));
                assert!(err.contains(&f.name), "{err}");
                // Everything decoded before the damaged event is still printed.
                assert!(full.starts_with(&lines), "{} flip at {i}", f.name);
            }
            // Without verification the decoder itself must hold: an error or a result, no panic.
            let (_, unverified) = run(&f.name, &bytes, false);
            if let Err(e) = unverified {
                assert!(e.contains(&f.name), "{e}");
            }
        }
    }
}

#[test]
fn random_multi_byte_corruption_never_panics() {
    // A small deterministic xorshift: corrupt runs of bytes, not just single bits.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for f in fixtures() {
        for _ in 0..300 {
            let mut bytes = f.bytes.clone();
            let at = 4 + (next() as usize) % (bytes.len() - 4);
            let len = 1 + (next() as usize) % 16;
            for b in bytes.iter_mut().skip(at).take(len) {
                *b = next() as u8;
            }
            let _ = run(&f.name, &bytes, false);
        }
    }
}
