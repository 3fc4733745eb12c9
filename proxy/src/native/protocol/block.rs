//! Native blocks: finding where a block ends without decoding its values.
//!
//! A block is `BlockInfo | columns (varuint) | rows (varuint) | per column: name, type, [custom serialization
//! kinds], data`. Column data is written only when the block has rows (ClickHouse's `NativeWriter`). Inside a
//! Data packet the block may be split over compressed frames; [`skip_block_body`] handles both forms.
//!
//! Here: the block as a whole ([`skip_block_body`], resumable through [`FrameState`]). Each column's data is
//! skipped by `column`; `predict` finds the end of a compressed block from the layout of the answer's
//! previous blocks without decompressing it.

use super::compression;
use super::error::DecodeError;
use super::revision::Revision;
use super::wire::Reader;

mod column;
mod predict;

use column::{skip_column, skip_strings};
use predict::{predict, Layout, Prediction};

/// What the proxy learns about a block while skipping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockShape {
    pub columns: u64,
    pub rows: u64,
}

impl BlockShape {
    /// The empty block that ends a stream of data (external tables, INSERT data).
    pub fn is_empty(&self) -> bool {
        self.columns == 0 && self.rows == 0
    }
}

/// Upper bound on columns in one block, far above anything ClickHouse allows in a table.
const MAX_COLUMNS: u64 = 1 << 20;

/// Progress through a block that has not fully arrived, so that the next attempt resumes where this one stopped
/// instead of scanning the packet from its start again (a 100 MB INSERT block arrives in hundreds of reads).
///
/// It belongs to the packet at the start of the buffer being framed: the framers reset it when a packet is
/// complete, and positions are counted from the packet's first byte, so they survive the buffer moving.
#[derive(Debug, Default)]
pub struct FrameState {
    /// Decompressed bytes of the frames read so far (compressed blocks only).
    scratch: Vec<u8>,
    /// Packet offset just after the last frame whose bytes are in `scratch`.
    frames_end: usize,
    /// Where skipping stopped in the block (in `scratch` for compressed blocks, in the packet otherwise).
    checkpoint: Option<Checkpoint>,
    /// Layout of the last compressed block framed in full, kept across packets of one answer.
    layout: Option<Layout>,
    /// A prediction in progress, when its frames have not all arrived.
    prediction: Option<Prediction>,
    /// Most decompressed bytes `scratch` may hold; `None`: no limit. A frame that would pass it is not
    /// decompressed: framing stops with [`DecodeError::OverAllowance`] and can resume once it is raised.
    allowance: Option<usize>,
}

impl FrameState {
    /// Forgets all progress: the next packet starts from scratch.
    pub fn reset(&mut self) {
        self.scratch.clear();
        self.frames_end = 0;
        self.checkpoint = None;
        self.prediction = None;
        // Do not keep a large decompression buffer alive between packets: it is not counted once they end.
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = Vec::new();
        }
    }
}

impl FrameState {
    /// Limits the decompressed bytes held for the packet being framed (see [`DecodeError::OverAllowance`]).
    pub fn set_allowance(&mut self, bytes: usize) {
        self.allowance = Some(bytes);
    }

    /// Decompressed bytes held for the packet being framed.
    pub fn held(&self) -> usize {
        self.scratch.len()
    }

    /// Forgets the learnt block layout: called at each new query, whose blocks may look different.
    pub fn forget_layout(&mut self) {
        self.layout = None;
    }
}

/// A point between (or inside) columns from which skipping can go on.
#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    shape: BlockShape,
    /// Offset where the column `column` (its name) starts, or where `string_rows_done` ends inside it.
    pos: usize,
    column: u64,
    /// For a top-level String column: rows already skipped when `pos` points into its data.
    string_rows_done: Option<u64>,
}

/// Skips the block body of a Data-like packet (after its table name): compressed frames or a plain block.
/// On `Incomplete`, `state` keeps what was learnt for the next attempt on the same packet.
pub fn skip_block_body(
    r: &mut Reader<'_>,
    revision: Revision,
    compressed: bool,
    state: &mut FrameState,
) -> Result<BlockShape, DecodeError> {
    if !compressed {
        return skip_block_resumable(r, revision, &mut state.checkpoint);
    }
    if state.frames_end == 0 && state.checkpoint.is_none() {
        let body_start = r.position();
        if let Some(shape) = predict(r, state)? {
            return Ok(shape);
        }
        r.seek(body_start)?;
    } else {
        r.seek(state.frames_end)?;
    }
    loop {
        let mut inner = Reader::new(&state.scratch);
        match skip_block_resumable(&mut inner, revision, &mut state.checkpoint) {
            Ok(shape) if inner.position() == state.scratch.len() => {
                state.layout = Layout::learn(&state.scratch, revision);
                return Ok(shape);
            }
            Ok(_) => {
                return Err(DecodeError::malformed(format!(
                    "compressed block ends {} bytes before its last frame does",
                    state.scratch.len() - inner.position()
                )))
            }
            // The block continues in the next frame.
            Err(DecodeError::Incomplete { .. }) => {
                let frame = compression::next_frame(r)?;
                let needed = state.scratch.len().saturating_add(frame.decompressed_size);
                if state.allowance.is_some_and(|allowed| needed > allowed) {
                    return Err(DecodeError::OverAllowance { needed });
                }
                frame.decompress_into(&mut state.scratch)?;
                state.frames_end = r.position();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Skips one uncompressed block.
pub fn skip_block(r: &mut Reader<'_>, revision: Revision) -> Result<BlockShape, DecodeError> {
    skip_block_resumable(r, revision, &mut None)
}

/// Skips one uncompressed block, starting from `checkpoint` if there is one and leaving one behind when the
/// bytes run out.
fn skip_block_resumable(
    r: &mut Reader<'_>,
    revision: Revision,
    checkpoint: &mut Option<Checkpoint>,
) -> Result<BlockShape, DecodeError> {
    let mut cp = match *checkpoint {
        Some(cp) => {
            r.seek(cp.pos)?;
            cp
        }
        None => {
            skip_block_info(r)?;
            let columns = r.varuint()?;
            let rows = r.varuint()?;
            if columns > MAX_COLUMNS {
                return Err(DecodeError::malformed(format!(
                    "block declares {columns} columns"
                )));
            }
            Checkpoint {
                shape: BlockShape { columns, rows },
                pos: r.position(),
                column: 0,
                string_rows_done: None,
            }
        }
    };
    let rows = cp.shape.rows;
    while cp.column < cp.shape.columns {
        if let Some(done) = cp.string_rows_done {
            // Resume inside a String column's data.
            if let Err(e) = skip_strings(r, rows, done, &mut cp) {
                *checkpoint = Some(cp);
                return Err(e);
            }
        } else {
            let result = skip_column(r, revision, rows, &mut cp);
            if let Err(e) = result {
                *checkpoint = Some(cp);
                return Err(e);
            }
        }
        cp.column += 1;
        cp.pos = r.position();
        cp.string_rows_done = None;
    }
    *checkpoint = None;
    Ok(cp.shape)
}

fn skip_block_info(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    loop {
        match r.varuint()? {
            0 => return Ok(()),
            1 => {
                r.u8()?; // is_overflows
            }
            2 => {
                r.i32_le()?; // bucket_num
            }
            3 => {
                let n = r.varuint()?; // out_of_order_buckets
                r.skip_items(n, 4)?;
            }
            other => {
                return Err(DecodeError::malformed(format!(
                    "unknown block info field {other}"
                )))
            }
        }
    }
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "block_golden_tests.rs"]
mod golden_tests;
