//! Framing of the packets a server sends after the handshake.

use super::block::{skip_block_body, BlockShape, FrameState};
use super::error::DecodeError;
use super::exception::{decode_exception, ServerException};
use super::packets::ServerCode;
use super::revision::Feature;
use super::wire::Reader;
use super::Context;

/// A server packet, as much of it as the proxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPacket {
    Data(BlockShape),
    Exception(ServerException),
    Progress { read_rows: u64, written_rows: u64 },
    Pong,
    EndOfStream,
    ProfileInfo,
    Totals,
    Extremes,
    TablesStatusResponse,
    Log,
    TableColumns,
    PartUuids,
    ReadTaskRequest,
    ProfileEvents,
    TimezoneUpdate,
}

impl ServerPacket {
    /// Whether this packet ends the answer to a query.
    pub fn ends_query(&self) -> bool {
        matches!(self, ServerPacket::EndOfStream | ServerPacket::Exception(_))
    }
}

/// Frames the packet at the start of `buf`; returns it and its length in bytes. `state` carries progress
/// between attempts on a packet that has not fully arrived.
pub fn frame_server_packet(
    buf: &[u8],
    ctx: &Context,
    state: &mut FrameState,
) -> Result<(ServerPacket, usize), DecodeError> {
    let mut r = Reader::new(buf);
    let code = r.varuint()?;
    let rev = ctx.revision;
    let packet = match ServerCode::from_u64(code) {
        Some(code @ (ServerCode::Data | ServerCode::Totals | ServerCode::Extremes)) => {
            r.bytes()?;
            let shape = skip_block_body(&mut r, rev, ctx.compression, state)?;
            match code {
                ServerCode::Totals => ServerPacket::Totals,
                ServerCode::Extremes => ServerPacket::Extremes,
                _ => ServerPacket::Data(shape),
            }
        }
        // Logs and profile events are never compressed below revision 54481 (above the proxy's maximum).
        Some(code @ (ServerCode::Log | ServerCode::ProfileEvents)) => {
            r.bytes()?;
            skip_block_body(&mut r, rev, false, state)?;
            if code == ServerCode::Log {
                ServerPacket::Log
            } else {
                ServerPacket::ProfileEvents
            }
        }
        Some(ServerCode::Exception) => ServerPacket::Exception(decode_exception(&mut r)?),
        Some(ServerCode::Progress) => {
            let read_rows = r.varuint()?;
            r.varuint()?; // read bytes
            r.varuint()?; // total rows to read
            if rev.has(Feature::TotalBytesInProgress) {
                r.varuint()?;
            }
            let mut written_rows = 0;
            if rev.has(Feature::ClientWriteInfo) {
                written_rows = r.varuint()?;
                r.varuint()?; // written bytes
            }
            if rev.has(Feature::ServerQueryTimeInProgress) {
                r.varuint()?; // elapsed ns
            }
            ServerPacket::Progress {
                read_rows,
                written_rows,
            }
        }
        Some(ServerCode::Pong) => ServerPacket::Pong,
        Some(ServerCode::EndOfStream) => ServerPacket::EndOfStream,
        Some(ServerCode::ProfileInfo) => {
            r.varuint()?; // rows
            r.varuint()?; // blocks
            r.varuint()?; // bytes
            r.u8()?; // applied limit
            r.varuint()?; // rows before limit
            r.u8()?; // calculated rows before limit
            if rev.has(Feature::RowsBeforeAggregation) {
                r.u8()?;
                r.varuint()?;
            }
            ServerPacket::ProfileInfo
        }
        Some(ServerCode::TablesStatusResponse) => {
            let n = r.varuint()?;
            for _ in 0..n {
                r.bytes()?; // database
                r.bytes()?; // table
                if r.bool()? {
                    r.varuint()?; // absolute delay
                    if rev.has(Feature::TableReadOnlyCheck) {
                        r.varuint()?;
                    }
                }
            }
            ServerPacket::TablesStatusResponse
        }
        Some(ServerCode::TableColumns) => {
            r.bytes()?;
            r.bytes()?;
            ServerPacket::TableColumns
        }
        Some(ServerCode::PartUuids) => {
            let n = r.varuint()?;
            r.skip_items(n, 16)?;
            ServerPacket::PartUuids
        }
        Some(ServerCode::ReadTaskRequest) => ServerPacket::ReadTaskRequest,
        Some(ServerCode::TimezoneUpdate) => {
            r.bytes()?;
            ServerPacket::TimezoneUpdate
        }
        Some(ServerCode::Hello) => return Err(DecodeError::malformed("a second server Hello")),
        Some(other) => {
            return Err(DecodeError::unsupported(format!(
                "server packet {other:?} (inter-server only)"
            )))
        }
        None => {
            return Err(DecodeError::malformed(format!(
                "unknown server packet type {code}"
            )))
        }
    };
    state.reset();
    Ok((packet, r.position()))
}
