//! Tests of `block.rs`.

use super::column::{KIND_SPARSE, LC_HAS_ADDITIONAL_KEYS, SPARSE_END_OF_GRANULE};
use super::*;
use crate::native::protocol::compression::{write_frame, Method};
use crate::native::protocol::revision::Feature;
use crate::native::protocol::wire::{put_bytes, put_varuint};

const OLD: Revision = Revision(54412);
const NEW: Revision = Revision(54468);

fn block(revision: Revision, rows: u64, columns: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0];
    put_varuint(&mut out, columns.len() as u64);
    put_varuint(&mut out, rows);
    for (ty, data) in columns {
        put_bytes(&mut out, b"c");
        put_bytes(&mut out, ty.as_bytes());
        if revision.has(Feature::CustomSerialization) {
            out.push(0);
        }
        out.extend_from_slice(data);
    }
    out
}

fn u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn sizes_every_supported_shape_and_every_prefix_is_incomplete() {
    let mut strings = Vec::new();
    for s in ["a", "", "ccc"] {
        put_bytes(&mut strings, s.as_bytes());
    }
    // Array(Nullable(String)) of [["a", NULL], [], ["ccc"]]: offsets 2, 2, 3; null map; strings.
    let mut array = u64s(&[2, 2, 3]);
    array.extend_from_slice(&[0, 1, 0]);
    array.extend_from_slice(&strings);
    // LowCardinality(String), 3 rows, dictionary ["", "x"], UInt8 indexes.
    let mut lc = u64s(&[1, LC_HAS_ADDITIONAL_KEYS, 2]);
    put_bytes(&mut lc, b"");
    put_bytes(&mut lc, b"x");
    lc.extend_from_slice(&u64s(&[3]));
    lc.extend_from_slice(&[1, 0, 1]);
    for revision in [OLD, NEW] {
        let bytes = block(
            revision,
            3,
            &[
                ("UInt64", &u64s(&[1, 2, 3])),
                ("String", &strings),
                ("Array(Nullable(String))", &array),
                ("LowCardinality(String)", &lc),
                (
                    "Tuple(UInt8, FixedString(2))",
                    &[1, 2, 3, b'a', b'b', b'c', b'd', b'e', b'f'],
                ),
            ],
        );
        let mut r = Reader::new(&bytes);
        assert_eq!(
            skip_block(&mut r, revision).unwrap(),
            BlockShape { columns: 5, rows: 3 }
        );
        assert_eq!(r.position(), bytes.len());
        for cut in 0..bytes.len() {
            match skip_block(&mut Reader::new(&bytes[..cut]), revision) {
                Err(DecodeError::Incomplete { needed }) => {
                    assert!(needed > cut && needed <= bytes.len())
                }
                other => panic!("prefix of {cut} bytes gave {other:?}"),
            }
        }
    }
}

/// Feeding a block in small pieces with one `FrameState` gives the same answer as feeding it whole, and
/// each attempt resumes instead of starting over.
#[test]
fn resumes_where_the_previous_attempt_stopped() {
    let mut strings = Vec::new();
    for i in 0..5000u32 {
        put_bytes(&mut strings, i.to_string().repeat((i % 7) as usize).as_bytes());
    }
    let numbers = u64s(&(0..5000).collect::<Vec<_>>());
    let plain = block(
        NEW,
        5000,
        &[("String", &strings), ("UInt64", &numbers), ("String", &strings)],
    );
    let mut compressed = Vec::new();
    for chunk in plain.chunks(7000) {
        write_frame(Method::Lz4, chunk, &mut compressed);
    }
    for (bytes, is_compressed) in [(&plain, false), (&compressed, true)] {
        let mut state = FrameState::default();
        let mut attempts = 0;
        let mut len = 0;
        let shape = loop {
            len = (len + 997).min(bytes.len());
            attempts += 1;
            match skip_block_body(&mut Reader::new(&bytes[..len]), NEW, is_compressed, &mut state) {
                Ok(shape) => break shape,
                Err(DecodeError::Incomplete { needed }) => assert!(needed > len || is_compressed),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(
            shape,
            BlockShape {
                columns: 3,
                rows: 5000
            }
        );
        assert_eq!(len, bytes.len());
        assert!(attempts > 10);
    }
}

/// A stream of compressed blocks of one answer: the header block, data blocks spanning several frames, and a
/// block with another layout. Every block is framed at exactly its end whether its size was predicted or not.
#[test]
fn predicted_blocks_end_exactly_where_full_framing_says() {
    let data = |rows: u64| u64s(&(0..rows).collect::<Vec<_>>());
    let blocks = [
        block(NEW, 0, &[("UInt64", &[]), ("Int32", &[])]),
        block(
            NEW,
            70_000,
            &[("UInt64", &data(70_000)), ("Int32", &vec![7; 280_000])],
        ),
        block(NEW, 3, &[("UInt64", &data(3)), ("Int32", &[1; 12])]),
        block(NEW, 2, &[("UInt64", &data(2)), ("String", &[1, b'a', 0])]),
        block(NEW, 5, &[("UInt64", &data(5)), ("Int32", &[2; 20])]),
    ];
    let mut stream = Vec::new();
    let mut ends = Vec::new();
    for b in &blocks {
        for chunk in b.chunks(200_000) {
            write_frame(Method::Lz4, chunk, &mut stream);
        }
        ends.push(stream.len());
    }
    for piece in [usize::MAX, 4096] {
        let mut state = FrameState::default();
        let mut start = 0;
        let mut len: usize = 0;
        let mut found = Vec::new();
        while found.len() < blocks.len() {
            len = len.saturating_add(piece).min(stream.len());
            let mut r = Reader::new(&stream[start..len]);
            match skip_block_body(&mut r, NEW, true, &mut state) {
                Ok(shape) => {
                    start += r.position();
                    found.push((start, shape.rows));
                    state.reset();
                }
                Err(DecodeError::Incomplete { .. }) => assert!(len < stream.len()),
                Err(e) => panic!("{e}"),
            }
        }
        let expected: Vec<_> = ends.iter().copied().zip([0, 70_000, 3, 2, 5]).collect();
        assert_eq!(found, expected, "pieces of {piece}");
    }
}

#[test]
fn header_blocks_have_no_data_and_opaque_types_only_matter_with_rows() {
    let header = block(
        NEW,
        0,
        &[
            ("AggregateFunction(uniq, String)", &[]),
            ("LowCardinality(String)", &[]),
        ],
    );
    assert_eq!(
        skip_block(&mut Reader::new(&header), NEW).unwrap(),
        BlockShape { columns: 2, rows: 0 }
    );
    let with_rows = block(NEW, 1, &[("AggregateFunction(uniq, String)", &[0; 16])]);
    assert!(matches!(
        skip_block(&mut Reader::new(&with_rows), NEW),
        Err(DecodeError::Unsupported(_))
    ));
}

#[test]
fn sparse_columns_count_their_values() {
    // 5 rows, non-defaults at rows 1 and 4: groups 1, 2, then the end with 0 trailing defaults.
    let mut data = Vec::new();
    for v in [1, 2, SPARSE_END_OF_GRANULE] {
        put_varuint(&mut data, v);
    }
    data.extend_from_slice(&u64s(&[7, 9]));
    let mut bytes = vec![0, 1, 5];
    put_bytes(&mut bytes, b"c");
    put_bytes(&mut bytes, b"UInt64");
    bytes.extend_from_slice(&[1, KIND_SPARSE]);
    bytes.extend_from_slice(&data);
    let mut r = Reader::new(&bytes);
    assert_eq!(
        skip_block(&mut r, NEW).unwrap(),
        BlockShape { columns: 1, rows: 5 }
    );
    assert_eq!(r.position(), bytes.len());
}

/// The probe's second case: a block that declares 2^40 rows, fed with frames that each decompress to much
/// more than they weigh. Framing stops at the allowance instead of decompressing on, and resumes where it
/// stopped when the allowance is raised.
#[test]
fn decompressed_bytes_stay_within_the_allowance() {
    let mut head = Vec::new();
    head.extend_from_slice(&[1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]); // BlockInfo
    put_varuint(&mut head, 1);
    put_varuint(&mut head, 1 << 40);
    put_bytes(&mut head, b"x");
    put_bytes(&mut head, b"UInt64");
    let mut packet = Vec::new();
    compression::write_frame(compression::Method::Lz4, &head, &mut packet);
    let zeros = vec![0u8; 4 << 20];
    for _ in 0..8 {
        compression::write_frame(compression::Method::Lz4, &zeros, &mut packet);
    }
    let mut state = FrameState::default();
    state.set_allowance(10 << 20);
    let err = skip_block_body(&mut Reader::new(&packet), OLD, true, &mut state).unwrap_err();
    assert_eq!(
        err,
        DecodeError::OverAllowance {
            needed: head.len() + (12 << 20)
        }
    );
    assert!(state.held() <= 10 << 20, "{}", state.held());
    state.set_allowance(64 << 20);
    let err = skip_block_body(&mut Reader::new(&packet), OLD, true, &mut state).unwrap_err();
    assert!(matches!(err, DecodeError::Incomplete { .. }), "{err}");
    assert_eq!(state.held(), head.len() + (32 << 20));
}

#[test]
fn compressed_blocks_may_span_frames() {
    let big: Vec<u8> = (0..300_000u64).flat_map(|v| v.to_le_bytes()).collect();
    let plain = block(OLD, 300_000, &[("UInt64", &big)]);
    let mut framed = Vec::new();
    for chunk in plain.chunks(1 << 20) {
        write_frame(Method::Lz4, chunk, &mut framed);
    }
    framed.push(5); // the next packet (EndOfStream) must not be consumed
    let mut state = FrameState::default();
    let mut r = Reader::new(&framed);
    let shape = skip_block_body(&mut r, OLD, true, &mut state).unwrap();
    assert_eq!(shape.rows, 300_000);
    assert_eq!(r.position(), framed.len() - 1);
    let cut = &framed[..framed.len() - 100];
    assert!(matches!(
        skip_block_body(&mut Reader::new(cut), OLD, true, &mut FrameState::default()),
        Err(DecodeError::Incomplete { .. })
    ));
}
