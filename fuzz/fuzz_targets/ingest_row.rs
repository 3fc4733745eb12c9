//! aurora-ingest's JSON → RowBinary encoder sees every Kafka message, whoever produced it: it must never panic,
//! must leave the batch as it was when it refuses a message, and every row it writes must have exactly the
//! shape of the mapping (so one bad message can never shift the columns of the rows after it).
#![no_main]

use aurora_ingest::columns::{envelope_columns, Column, ColumnType, RowEncoder};
use libfuzzer_sys::fuzz_target;

const TYPES: [ColumnType; 13] = [
    ColumnType::String,
    ColumnType::Uuid,
    ColumnType::DateTime,
    ColumnType::UInt8,
    ColumnType::UInt16,
    ColumnType::UInt32,
    ColumnType::UInt64,
    ColumnType::Int8,
    ColumnType::Int16,
    ColumnType::Int32,
    ColumnType::Int64,
    ColumnType::Float32,
    ColumnType::Float64,
];

/// One column of every type, at top-level and nested paths; `selector` picks which are required.
fn every_type(selector: u8) -> Vec<Column> {
    TYPES
        .iter()
        .enumerate()
        .map(|(i, ty)| Column {
            name: format!("c{i}"),
            path: match i % 3 {
                0 => vec![format!("c{i}")],
                1 => vec!["n".into(), format!("c{i}")],
                _ => vec!["n".into(), "m".into(), format!("c{i}")],
            },
            ty: *ty,
            required: (selector >> (i % 7)) & 1 == 1,
        })
        .collect()
}

/// The length of one RowBinary row of `columns` at the start of `row`, or None if it is malformed.
fn row_len(columns: &[Column], row: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    for c in columns {
        let fixed = match c.ty {
            ColumnType::String => {
                let (mut len, mut shift) = (0u64, 0u32);
                loop {
                    let b = *row.get(at)?;
                    at += 1;
                    len |= u64::from(b & 0x7f) << shift;
                    if b & 0x80 == 0 {
                        break;
                    }
                    shift += 7;
                    if shift > 63 {
                        return None;
                    }
                }
                usize::try_from(len).ok()?
            }
            ColumnType::UInt8 | ColumnType::Int8 => 1,
            ColumnType::UInt16 | ColumnType::Int16 => 2,
            ColumnType::UInt32 | ColumnType::Int32 | ColumnType::Float32 | ColumnType::DateTime => 4,
            ColumnType::UInt64 | ColumnType::Int64 | ColumnType::Float64 => 8,
            ColumnType::Uuid => 16,
        };
        at = at.checked_add(fixed)?;
        if at > row.len() {
            return None;
        }
    }
    Some(at)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let columns = if selector & 0x80 == 0 {
        envelope_columns()
    } else {
        every_type(selector)
    };
    let encoder = RowEncoder::new(columns.clone());
    let before = b"rows already in the batch".to_vec();
    let mut out = before.clone();
    match encoder.encode(message, &mut out) {
        Ok(()) => {
            assert!(out.starts_with(&before), "the batch before the row changed");
            let row = &out[before.len()..];
            assert_eq!(row_len(&columns, row), Some(row.len()), "the row does not have the mapping's shape");
        }
        Err(e) => {
            assert_eq!(out, before, "a refused message left bytes in the batch");
            let _ = e.to_string();
        }
    }
});
