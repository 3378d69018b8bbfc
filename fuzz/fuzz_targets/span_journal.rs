//! The span journal's binary records (`glassbox_store::spool::decode_journal_records`): span
//! records and usage records, which recovery reads from files a killed process left, on
//! arbitrary bytes.
//!
//! Beyond "no panic": every row read back encodes to a record that reads back as the same
//! row, and a stream of such records reads back whole, with nothing skipped.

#![no_main]

use glassbox_store::spool::{JournalRecords, decode_journal_records, encode_span_record, encode_usage_record};
use libfuzzer_sys::fuzz_target;

/// The key the seeds' records were written with.
const KEY: u32 = 0x0102_0304;

fuzz_target!(|data: &[u8]| {
    let (rows, _skipped) = decode_journal_records(data, KEY);
    let mut records = Vec::new();
    for row in &rows.spans {
        let mut record = Vec::new();
        encode_span_record(row, KEY, &mut record).expect("a span row read back encodes");
        let (again, skipped) = decode_journal_records(&record, KEY);
        let alone = JournalRecords { spans: vec![row.clone()], usage: Vec::new() };
        assert_eq!((again, skipped), (alone, 0), "a span record reads back as its row");
        records.extend_from_slice(&record);
    }
    for row in &rows.usage {
        let mut record = Vec::new();
        encode_usage_record(row, KEY, &mut record).expect("a usage row read back encodes");
        let (again, skipped) = decode_journal_records(&record, KEY);
        let alone = JournalRecords { spans: Vec::new(), usage: vec![row.clone()] };
        assert_eq!((again, skipped), (alone, 0), "a usage record reads back as its row");
        records.extend_from_slice(&record);
    }
    let (again, skipped) = decode_journal_records(&records, KEY);
    assert_eq!((again, skipped), (rows, 0), "records one after another read back whole");
});
