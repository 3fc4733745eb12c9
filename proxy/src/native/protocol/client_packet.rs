//! Framing of the packets a client sends after the handshake.

use super::block::{skip_block_body, BlockShape, FrameState};
use super::compression::{write_frame, Method};
use super::error::DecodeError;
use super::packets::ClientCode;
use super::query::{decode_query, QueryPacket};
use super::wire::{put_bytes, put_varuint, Reader};
use super::Context;

/// A client packet, as much of it as the proxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPacket<'a> {
    Query(QueryPacket<'a>),
    /// A block of INSERT data or of an external table; an empty one ends the stream.
    Data(BlockShape),
    Scalar(BlockShape),
    Cancel,
    Ping,
    KeepAlive,
    TablesStatusRequest,
    IgnoredPartUuids,
}

/// The empty Data block a client sends after a Query to end its external tables (compressed when the query's
/// data travels compressed): table name "", block info with its defaults, no columns, no rows.
pub fn encode_empty_data(compression: bool) -> Vec<u8> {
    let mut block = Vec::with_capacity(16);
    // BlockInfo: field 1 is_overflows = false, field 2 bucket_num = -1, field 0 ends it.
    block.extend_from_slice(&[1, 0, 2]);
    block.extend_from_slice(&(-1i32).to_le_bytes());
    block.push(0);
    put_varuint(&mut block, 0); // columns
    put_varuint(&mut block, 0); // rows
    let mut out = Vec::with_capacity(48);
    put_varuint(&mut out, ClientCode::Data as u64);
    put_bytes(&mut out, b"");
    if compression {
        write_frame(Method::Lz4, &block, &mut out);
    } else {
        out.extend_from_slice(&block);
    }
    out
}

/// Frames the packet at the start of `buf`; returns it and its length in bytes. `state` carries progress
/// between attempts on a packet that has not fully arrived.
pub fn frame_client_packet<'a>(
    buf: &'a [u8],
    ctx: &Context,
    state: &mut FrameState,
) -> Result<(ClientPacket<'a>, usize), DecodeError> {
    let mut r = Reader::new(buf);
    let code = r.varuint()?;
    let packet = match ClientCode::from_u64(code) {
        Some(ClientCode::Query) => ClientPacket::Query(decode_query(&mut r, ctx.revision)?),
        Some(code @ (ClientCode::Data | ClientCode::Scalar)) => {
            r.bytes()?; // table name
            let shape = skip_block_body(&mut r, ctx.revision, ctx.compression, state)?;
            if code == ClientCode::Data {
                ClientPacket::Data(shape)
            } else {
                ClientPacket::Scalar(shape)
            }
        }
        Some(ClientCode::Cancel) => ClientPacket::Cancel,
        Some(ClientCode::Ping) => ClientPacket::Ping,
        Some(ClientCode::KeepAlive) => ClientPacket::KeepAlive,
        Some(ClientCode::TablesStatusRequest) => {
            let n = r.varuint()?;
            for _ in 0..n {
                r.bytes()?;
                r.bytes()?;
            }
            ClientPacket::TablesStatusRequest
        }
        Some(ClientCode::IgnoredPartUuids) => {
            let n = r.varuint()?;
            r.skip_items(n, 16)?;
            ClientPacket::IgnoredPartUuids
        }
        Some(ClientCode::Hello) => return Err(DecodeError::malformed("a second Hello after the handshake")),
        Some(other) => {
            return Err(DecodeError::unsupported(format!(
                "client packet {other:?} (inter-server only)"
            )))
        }
        None => {
            return Err(DecodeError::malformed(format!(
                "unknown client packet type {code}"
            )))
        }
    };
    state.reset();
    Ok((packet, r.position()))
}

#[cfg(test)]
mod tests {
    use super::super::Revision;
    use super::*;

    #[test]
    fn the_empty_data_block_frames_as_empty_both_ways() {
        for compression in [false, true] {
            let bytes = encode_empty_data(compression);
            let ctx = Context {
                revision: Revision(54468),
                compression,
            };
            let (packet, len) = frame_client_packet(&bytes, &ctx, &mut FrameState::default()).unwrap();
            assert_eq!(len, bytes.len());
            assert!(
                matches!(packet, ClientPacket::Data(shape) if shape.is_empty()),
                "{compression}"
            );
        }
    }
}
