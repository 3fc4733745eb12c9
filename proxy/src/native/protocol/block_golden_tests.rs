//! Golden server blocks: chdb's (ClickHouse 26.9) `FORMAT Native` output of modern types, from
//! `fixtures/native/blocks/` (written by its `generate.py`), wrapped into the Data packets a server sends and
//! framed by [`frame_server_packet`]: each framed to its exact end, each strict prefix `Incomplete`, and the types
//! the framer cannot size reported as unsupported (the proxy then relays bytes) rather than framed wrongly.
//!
//! `FORMAT Native` writes the block at client revision 0: `columns | rows | name | type | data`, without the
//! packet code, the table name, BlockInfo or (from 54454) the per-column custom-serialization flag. Each golden
//! file holds one column, so its data runs to the end of the file and the packet can be rebuilt around it.

use std::path::PathBuf;

use super::*;
use crate::native::protocol::compression::{write_frame, Method};
use crate::native::protocol::revision::Feature;
use crate::native::protocol::server_packet::{frame_server_packet, ServerPacket};
use crate::native::protocol::wire::{put_bytes, put_varuint};
use crate::native::protocol::Context;

/// The 18.16 test server's revision, the first with the custom-serialization flag, and the proxy's maximum.
const REVISIONS: [Revision; 3] = [Revision(54412), Revision(54454), Revision(54469)];
/// Server packet code of Data.
const DATA: u64 = 1;

struct Golden {
    name: String,
    type_name: String,
    expected: String,
    rows: u64,
    /// Bytes after the column's type: its data (state prefixes included).
    data: Vec<u8>,
}

fn goldens() -> Vec<Golden> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/native/blocks");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest.json")).unwrap();
    let files = manifest["files"].as_object().expect("files");
    assert!(files.len() >= 30, "only {} golden files", files.len());
    files
        .iter()
        .map(|(name, entry)| {
            let bytes = std::fs::read(dir.join(format!("{name}.native"))).unwrap();
            let mut r = Reader::new(&bytes);
            assert_eq!(r.varuint().unwrap(), 1, "{name}: one column");
            let rows = r.varuint().unwrap();
            assert_eq!(r.bytes().unwrap(), b"c", "{name}");
            let type_name = r.string().unwrap().to_string();
            assert_eq!(
                type_name,
                entry["type"].as_str().unwrap(),
                "{name}: type as chdb names it"
            );
            let data = bytes[r.position()..].to_vec();
            Golden {
                name: name.clone(),
                type_name,
                expected: entry["expected"].as_str().unwrap().to_string(),
                rows,
                data,
            }
        })
        .collect()
}

/// The block body (after the table name) a server at `revision` sends for this column.
fn block_body(g: &Golden, revision: Revision) -> Vec<u8> {
    let mut out = vec![1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]; // BlockInfo: is_overflows 0, bucket_num -1
    put_varuint(&mut out, 1);
    put_varuint(&mut out, g.rows);
    put_bytes(&mut out, b"c");
    put_bytes(&mut out, g.type_name.as_bytes());
    if revision.has(Feature::CustomSerialization) {
        out.push(0); // no custom serialization
    }
    out.extend_from_slice(&g.data);
    out
}

/// A whole Data packet: code, empty table name, the body (plain, or in LZ4 frames of `frame` bytes).
fn data_packet(g: &Golden, revision: Revision, compressed_in: Option<usize>) -> Vec<u8> {
    let body = block_body(g, revision);
    let mut out = Vec::new();
    put_varuint(&mut out, DATA);
    put_bytes(&mut out, b"");
    match compressed_in {
        None => out.extend_from_slice(&body),
        Some(frame) => {
            for chunk in body.chunks(frame) {
                write_frame(Method::Lz4, chunk, &mut out);
            }
        }
    }
    out
}

/// Frames `packet` followed by the next packet (EndOfStream, code 5), which must not be consumed.
fn frame(packet: &[u8], revision: Revision, compression: bool) -> Result<(ServerPacket, usize), DecodeError> {
    let mut buf = packet.to_vec();
    buf.push(5);
    let ctx = Context {
        revision,
        compression,
    };
    frame_server_packet(&buf, &ctx, &mut FrameState::default())
}

fn check(g: &Golden, revision: Revision, compressed_in: Option<usize>) -> Result<(), String> {
    let packet = data_packet(g, revision, compressed_in);
    let compression = compressed_in.is_some();
    let what = format!(
        "{} ({}) at {revision}, compressed in {compressed_in:?}",
        g.name, g.type_name
    );
    match (g.expected.as_str(), frame(&packet, revision, compression)) {
        ("framed", Ok((ServerPacket::Data(shape), len))) => {
            if shape
                != (BlockShape {
                    columns: 1,
                    rows: g.rows,
                })
                || len != packet.len()
            {
                return Err(format!(
                    "{what}: framed as {shape:?} ending at {len} of {}",
                    packet.len()
                ));
            }
        }
        ("opaque", Err(DecodeError::Unsupported(_))) => {}
        (expected, other) => return Err(format!("{what}: expected {expected}, got {other:?}")),
    }
    // Every strict prefix: not yet complete. Never an end, never malformed. (Unsupported is the framer's answer
    // for an opaque type once it reaches the type name, at any length from there on.)
    for cut in 0..packet.len() {
        let ctx = Context {
            revision,
            compression,
        };
        match frame_server_packet(&packet[..cut], &ctx, &mut FrameState::default()) {
            Err(DecodeError::Incomplete { .. }) => {}
            Err(DecodeError::Unsupported(_)) if g.expected == "opaque" => {}
            other => {
                return Err(format!(
                    "{what}: prefix of {cut}/{} bytes gave {other:?}",
                    packet.len()
                ))
            }
        }
    }
    Ok(())
}

#[test]
fn golden_blocks_frame_to_their_exact_end_and_prefixes_are_incomplete() {
    let mut failures = Vec::new();
    for g in goldens() {
        for revision in REVISIONS {
            for compressed_in in [None, Some(1 << 20), Some(7)] {
                if let Err(e) = check(&g, revision, compressed_in) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same blocks fed a few bytes at a time into one `FrameState`, as they arrive from a socket.
#[test]
fn golden_blocks_framed_in_pieces_end_where_whole_framing_does() {
    for g in goldens().into_iter().filter(|g| g.expected == "framed") {
        for compressed_in in [None, Some(16)] {
            let revision = Revision(54469);
            let packet = data_packet(&g, revision, compressed_in);
            let ctx = Context {
                revision,
                compression: compressed_in.is_some(),
            };
            let mut state = FrameState::default();
            let mut len = 0;
            let end = loop {
                len = (len + 5).min(packet.len());
                match frame_server_packet(&packet[..len], &ctx, &mut state) {
                    Ok((_, end)) => break end,
                    Err(DecodeError::Incomplete { .. }) if len < packet.len() => {}
                    other => panic!("{} in pieces, {len} bytes: {other:?}", g.name),
                }
            };
            assert_eq!(end, packet.len(), "{}", g.name);
        }
    }
}
