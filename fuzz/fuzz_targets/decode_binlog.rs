//! Feeds arbitrary bytes to the binlog reader and decoder, the whole replay path into NDJSON.
//! Checksums are off so mutations reach the event and row decoders instead of stopping at the
//! CRC. Any panic, hang or runaway allocation is a bug; errors are the expected outcome.
#![no_main]

use binlake::replay::{replay_bytes, ReplayOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ReplayOptions {
        no_verify_checksums: true,
        ..Default::default()
    };
    let _ = replay_bytes("fuzz.000001", data, &options, &mut std::io::sink());
});
