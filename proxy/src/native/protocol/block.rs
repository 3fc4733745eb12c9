//! Native blocks: finding where a block ends without decoding its values.
//!
//! A block is `BlockInfo | columns (varuint) | rows (varuint) | per column: name, type, [custom serialization
//! kinds], data`. Column data is written only when the block has rows (ClickHouse's `NativeWriter`). Inside a
//! Data packet the block may be split over compressed frames; [`skip_block_body`] handles both forms.

use super::compression;
use super::error::DecodeError;
use super::revision::{Feature, Revision};
use super::types::DataType;
use super::wire::Reader;

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

/// LowCardinality index flags (`SerializationLowCardinality`).
const LC_NEED_GLOBAL_DICTIONARY: u64 = 1 << 8;
const LC_HAS_ADDITIONAL_KEYS: u64 = 1 << 9;
/// Sparse serialization: the offset that ends a column's offsets stream.
const SPARSE_END_OF_GRANULE: u64 = 1 << 62;
/// Serialization kinds written after a column's type when custom serialization is on.
const KIND_DEFAULT: u8 = 0;
const KIND_SPARSE: u8 = 1;
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

/// The shape of a block whose columns all have fixed widths: names and types (the same in every block of one
/// answer) and the bytes each row takes. From it and a block's row count, the block's decompressed size follows.
#[derive(Debug, Clone)]
struct Layout {
    columns: u64,
    /// Bytes of every column's name, type and serialization flag together.
    headers_len: usize,
    /// The first column's name, type and flag, compared with each new block before trusting the layout.
    first_header: Vec<u8>,
    row_width: u64,
}

impl Layout {
    /// Learns the layout of a decompressed block, if all its columns have a fixed width.
    fn learn(block: &[u8], revision: Revision) -> Option<Layout> {
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
struct Prediction {
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
fn predict(r: &mut Reader<'_>, state: &mut FrameState) -> Result<Option<BlockShape>, DecodeError> {
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

/// Skips one column: name, type, serialization kinds, data.
fn skip_column(
    r: &mut Reader<'_>,
    revision: Revision,
    rows: u64,
    cp: &mut Checkpoint,
) -> Result<(), DecodeError> {
    let _name = r.bytes()?;
    let type_name = r.string()?;
    let ty = DataType::parse(type_name)?;
    let kinds = if revision.has(Feature::CustomSerialization) && r.bool()? {
        Some(read_kinds(r, &ty)?)
    } else {
        None
    };
    if rows == 0 {
        return Ok(());
    }
    if let Some(part) = ty.opaque_part() {
        return Err(DecodeError::unsupported(format!(
            "column of type {type_name} ({part} values are not self-describing)"
        )));
    }
    if ty == DataType::String && kinds.is_none() {
        // The common large column: resumable row by row.
        return skip_strings(r, rows, 0, cp);
    }
    skip_prefix(r, &ty)?;
    skip_data(r, &ty, kinds.as_ref(), rows)
}

/// Skips the values of a top-level String column from row `done`; on running out of bytes, records the last
/// complete row in `cp`.
fn skip_strings(
    r: &mut Reader<'_>,
    rows: u64,
    mut done: u64,
    cp: &mut Checkpoint,
) -> Result<(), DecodeError> {
    while done < rows {
        let before = r.position();
        if let Err(e) = r.bytes() {
            cp.pos = before;
            cp.string_rows_done = Some(done);
            return Err(e);
        }
        done += 1;
    }
    Ok(())
}

/// `BlockInfo`: numbered fields ending with field 0.
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

/// Serialization kinds of one column: one byte per level, recursive for tuples.
#[derive(Debug)]
enum Kinds {
    Plain(u8),
    Tuple(Vec<Kinds>),
}

impl Kinds {
    fn is_sparse(&self) -> bool {
        matches!(self, Kinds::Plain(KIND_SPARSE))
    }
}

fn read_kinds(r: &mut Reader<'_>, ty: &DataType) -> Result<Kinds, DecodeError> {
    let kind = r.u8()?;
    if kind != KIND_DEFAULT && kind != KIND_SPARSE {
        return Err(DecodeError::unsupported(format!("serialization kind {kind}")));
    }
    match ty {
        DataType::Tuple(elements) => Ok(Kinds::Tuple(
            elements
                .iter()
                .map(|e| read_kinds(r, e))
                .collect::<Result<_, _>>()?,
        )),
        _ => Ok(Kinds::Plain(kind)),
    }
}

/// The state prefix written before any data of a column (LowCardinality's key version).
fn skip_prefix(r: &mut Reader<'_>, ty: &DataType) -> Result<(), DecodeError> {
    match ty {
        DataType::LowCardinality(_) => {
            let version = r.u64_le()?;
            if version != 1 {
                return Err(DecodeError::malformed(format!(
                    "LowCardinality key version {version}"
                )));
            }
            Ok(())
        }
        DataType::Nullable(inner) | DataType::Array(inner) => skip_prefix(r, inner),
        DataType::Tuple(elements) => elements.iter().try_for_each(|e| skip_prefix(r, e)),
        DataType::Fixed(_) | DataType::String => Ok(()),
        DataType::Opaque(name) => Err(DecodeError::unsupported(format!("{name} column"))),
    }
}

fn skip_data(r: &mut Reader<'_>, ty: &DataType, kinds: Option<&Kinds>, rows: u64) -> Result<(), DecodeError> {
    if kinds.is_some_and(Kinds::is_sparse) {
        let values = skip_sparse_offsets(r, rows)?;
        return skip_data(r, ty, None, values);
    }
    match ty {
        DataType::Fixed(width) => r.skip_items(rows, *width),
        DataType::String => {
            for _ in 0..rows {
                r.bytes()?;
            }
            Ok(())
        }
        DataType::Nullable(inner) => {
            r.skip_items(rows, 1)?;
            skip_data(r, inner, None, rows)
        }
        DataType::Array(inner) => {
            if rows == 0 {
                return Ok(());
            }
            r.skip_items(rows - 1, 8)?;
            let elements = r.u64_le()?;
            skip_data(r, inner, None, elements)
        }
        DataType::Tuple(elements) => {
            let element_kinds = match kinds {
                Some(Kinds::Tuple(k)) if k.len() == elements.len() => Some(k),
                _ => None,
            };
            for (i, element) in elements.iter().enumerate() {
                skip_data(r, element, element_kinds.map(|k| &k[i]), rows)?;
            }
            Ok(())
        }
        DataType::LowCardinality(dictionary) => {
            let mut seen = 0u64;
            while seen < rows {
                let index_type = r.u64_le()?;
                if index_type & LC_NEED_GLOBAL_DICTIONARY != 0 {
                    return Err(DecodeError::unsupported(
                        "LowCardinality with a global dictionary",
                    ));
                }
                if index_type & LC_HAS_ADDITIONAL_KEYS != 0 {
                    let keys = r.u64_le()?;
                    skip_data(r, dictionary, None, keys)?;
                }
                let count = r.u64_le()?;
                if count == 0 || count > rows - seen {
                    return Err(DecodeError::malformed(format!(
                        "LowCardinality granule of {count} rows in a column of {rows}"
                    )));
                }
                let width = match index_type & 0xff {
                    0 => 1,
                    1 => 2,
                    2 => 4,
                    3 => 8,
                    other => {
                        return Err(DecodeError::malformed(format!(
                            "LowCardinality index type {other}"
                        )))
                    }
                };
                r.skip_items(count, width)?;
                seen += count;
            }
            Ok(())
        }
        DataType::Opaque(name) => Err(DecodeError::unsupported(format!("{name} column"))),
    }
}

/// Reads a sparse column's offsets stream and returns how many non-default values follow.
fn skip_sparse_offsets(r: &mut Reader<'_>, rows: u64) -> Result<u64, DecodeError> {
    let mut values = 0u64;
    let mut covered = 0u64;
    loop {
        let group = r.varuint()?;
        if group & SPARSE_END_OF_GRANULE != 0 {
            return Ok(values);
        }
        values += 1;
        covered = covered.saturating_add(group).saturating_add(1);
        if covered > rows {
            return Err(DecodeError::malformed(format!(
                "sparse column covers more than its {rows} rows"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::protocol::compression::{write_frame, Method};
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
        assert_eq!(err, DecodeError::OverAllowance { needed: head.len() + (12 << 20) });
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
}
