//! The bytes a batch sends: each message as a RowBinary row of the pipeline's stage (the mapping's columns,
//! then its topic, partition and offset: [`crate::schema::STAGE_META`]), and each message set aside as a
//! record of the dead-letter table ([`crate::schema::DEAD_LETTER_COLUMNS`]).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::columns::{write_bytes, RowEncoder, RowError};

/// A message set aside: where it was read, why it is no row, and its bytes as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The [`RowError`]'s text: names the column and the reason.
    pub error: String,
    pub raw: Vec<u8>,
}

/// Appends the stage row of the message at `offset` to `out`: its columns from `payload`, then its
/// coordinates. On a refusal `out` is left as it was.
pub(super) fn stage_row(
    encoder: &RowEncoder,
    topic: &str,
    partition: i32,
    offset: i64,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RowError> {
    encoder.encode(payload, out)?;
    write_bytes(topic.as_bytes(), out);
    out.extend_from_slice(&partition.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    Ok(())
}

/// The RowBinary body of the dead-letter insert: `topic, partition, offset, error, raw, time`, each
/// record stamped with `time` (seconds since 1970).
pub(super) fn dead_letter_rows(dead: &[DeadLetter], time: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for d in dead {
        write_bytes(d.topic.as_bytes(), &mut out);
        out.extend_from_slice(&d.partition.to_le_bytes());
        out.extend_from_slice(&d.offset.to_le_bytes());
        write_bytes(d.error.as_bytes(), &mut out);
        write_bytes(&d.raw, &mut out);
        out.extend_from_slice(&time.to_le_bytes());
    }
    out
}

/// Now, in seconds since 1970 (a ClickHouse `DateTime`).
pub(super) fn unix_time() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::{Column, ColumnType};

    #[test]
    fn a_dead_letter_record_is_its_six_columns_in_row_binary() {
        let dead = DeadLetter {
            topic: "ev".into(),
            partition: 2,
            offset: 258,
            error: "empty message".into(),
            raw: vec![0xff, 0x00],
        };
        let mut expected = vec![2, b'e', b'v']; // String: varint length, bytes
        expected.extend_from_slice(&[2, 0, 0, 0]); // Int32 little-endian
        expected.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0]); // Int64 258
        expected.push(13);
        expected.extend_from_slice(b"empty message");
        expected.extend_from_slice(&[2, 0xff, 0x00]); // raw bytes kept as read
        expected.extend_from_slice(&1_700_000_000u32.to_le_bytes()); // DateTime
        assert_eq!(
            dead_letter_rows(std::slice::from_ref(&dead), 1_700_000_000),
            expected
        );
        let two = dead_letter_rows(&[dead.clone(), dead], 1_700_000_000);
        assert_eq!(two, [expected.clone(), expected].concat());
        assert!(dead_letter_rows(&[], 1).is_empty());
    }

    #[test]
    fn a_stage_row_ends_with_the_coordinates_and_a_refusal_writes_nothing() {
        let encoder = RowEncoder::new(vec![Column {
            name: "n".into(),
            path: vec!["n".into()],
            ty: ColumnType::UInt16,
            required: true,
        }]);
        let mut out = vec![0xaa];
        stage_row(&encoder, "t", -1, 5, br#"{"n":7}"#, &mut out).unwrap();
        let mut expected = vec![0xaa, 7, 0, 1, b't'];
        expected.extend_from_slice(&(-1i32).to_le_bytes());
        expected.extend_from_slice(&5i64.to_le_bytes());
        assert_eq!(out, expected);
        let e = stage_row(&encoder, "t", 0, 6, br#"{"m":1}"#, &mut out).unwrap_err();
        assert_eq!(e.to_string(), "column n: required field n is missing");
        assert_eq!(out, expected, "a refused message adds no bytes");
    }
}
