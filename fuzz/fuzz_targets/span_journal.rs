//! The span journal's binary records (`glassbox_store::spool::decode_span_records`), which
//! recovery reads from files a killed process left, on arbitrary bytes.
//!
//! Beyond "no panic": every row read back encodes to a record that reads back as the same
//! row, and a stream of such records reads back whole, with nothing skipped.

#![no_main]

use glassbox_store::spool::{decode_span_records, encode_span_record};
use libfuzzer_sys::fuzz_target;

/// The key the seeds' records were written with.
const KEY: u32 = 0x0102_0304;

fuzz_target!(|data: &[u8]| {
    let (rows, _skipped) = decode_span_records(data, KEY);
    let mut records = Vec::new();
    for row in &rows {
        let mut record = Vec::new();
        encode_span_record(row, KEY, &mut record).expect("a row read back encodes");
        let (again, skipped) = decode_span_records(&record, KEY);
        assert_eq!((again.as_slice(), skipped), (std::slice::from_ref(row), 0), "a record reads back as its row");
        records.extend_from_slice(&record);
    }
    let (again, skipped) = decode_span_records(&records, KEY);
    assert_eq!((again, skipped), (rows, 0), "records one after another read back whole");
});
