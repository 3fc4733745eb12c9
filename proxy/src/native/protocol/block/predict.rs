//! Sizing a compressed block without decompressing it: the layout of the answer's blocks whose columns all
//! have fixed widths, learnt from one block framed in full, predicts the decompressed size of the next ones.

use super::{skip_block_info, BlockShape, FrameState};
use crate::native::protocol::compression;
use crate::native::protocol::error::DecodeError;
use crate::native::protocol::revision::{Feature, Revision};
use crate::native::protocol::types::DataType;
use crate::native::protocol::wire::Reader;

/// The shape of a block whose columns all have fixed widths: names and types (the same in every block of one
/// answer) and the bytes each row takes. From it and a block's row count, the block's decompressed size follows.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    columns: u64,
    /// Bytes of every column's name, type and serialization flag together.
    headers_len: usize,
    /// The first column's name, type and flag, compared with each new block before trusting the layout.
    first_header: Vec<u8>,
    row_width: u64,
}

impl Layout {
    /// Learns the layout of a decompressed block, if all its columns have a fixed width.
    pub(super) fn learn(block: &[u8], revision: Revision) -> Option<Layout> {
        let mut r = Reader::new(block);
        skip_block_info(&mut r).ok()?;
        let columns = r.varuint().ok()?;
        let rows = r.varuint().ok()?;
        let (mut headers_len, mut first_header, mut row_width) = (0usize, Vec::new(), 0u64);
        for column in 0..columns {
            let start = r.position();
            r.bytes().ok()?;
            let DataType::Fixed(width) = DataType::parse(r.string().ok()?).ok()? else {
                return None;
            };
            if revision.has(Feature::CustomSerialization) && r.bool().ok()? {
                return None;
            }
            headers_len += r.position() - start;
            if column == 0 {
                first_header = r.consumed_since(start).to_vec();
            }
            row_width = row_width.checked_add(width)?;
            r.skip_items(rows, width).ok()?;
        }
        (r.position() == block.len() && columns > 0).then_some(Layout {
            columns,
            headers_len,
            first_header,
            row_width,
        })
    }
}

/// A compressed block whose size was predicted from the layout; its frames are being counted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prediction {
    shape: BlockShape,
    /// Decompressed size the block must have.
    total: usize,
    /// Decompressed bytes of the frames counted so far.
    seen: usize,
    /// Packet offset after the last counted frame.
    frames_end: usize,
}

/// Finds the end of a compressed block without decompressing it, when the layout of the answer's blocks is
/// known: only the first bytes of the first frame are decoded (for the row count), and the frames' declared
/// sizes must add up exactly to the predicted size. `Ok(None)` when the prediction does not hold: the caller
/// then frames the block in full from where it started.
pub(super) fn predict(r: &mut Reader<'_>, state: &mut FrameState) -> Result<Option<BlockShape>, DecodeError> {
    let body_start = r.position();
    let mut prediction = match state.prediction {
        Some(p) => {
            r.seek(p.frames_end)?;
            p
        }
        None => {
            let Some(layout) = &state.layout else {
                return Ok(None);
            };
            let frame = compression::next_frame(r)?;
            let prefix = frame.decompress_prefix(40 + layout.first_header.len())?;
            let mut p = Reader::new(&prefix);
            let header = (|| -> Result<(u64, u64, usize), DecodeError> {
                skip_block_info(&mut p)?;
                let columns = p.varuint()?;
                let rows = p.varuint()?;
                let counts_end = p.position();
                let first = p.take(layout.first_header.len())?;
                if first != layout.first_header.as_slice() {
                    return Err(DecodeError::malformed("layout changed"));
                }
                Ok((columns, rows, counts_end))
            })();
            let total = header
                .ok()
                .filter(|(columns, _, _)| *columns == layout.columns)
                .and_then(|(columns, rows, counts_end)| {
                    let data = usize::try_from(rows.checked_mul(layout.row_width)?).ok()?;
                    Some((
                        BlockShape { columns, rows },
                        counts_end.checked_add(layout.headers_len)?.checked_add(data)?,
                    ))
                });
            let Some((shape, total)) = total else {
                state.layout = None;
                r.seek(body_start)?;
                return Ok(None);
            };
            Prediction {
                shape,
                total,
                seen: frame.decompressed_size,
                frames_end: r.position(),
            }
        }
    };
    while prediction.seen < prediction.total {
        match compression::next_frame(r) {
            Ok(frame) => {
                prediction.seen += frame.decompressed_size;
                prediction.frames_end = r.position();
            }
            Err(e @ DecodeError::Incomplete { .. }) => {
                state.prediction = Some(prediction);
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    state.prediction = None;
    if prediction.seen == prediction.total {
        return Ok(Some(prediction.shape));
    }
    // The frames do not add up: this block is not shaped like the previous ones.
    state.layout = None;
    Ok(None)
}
