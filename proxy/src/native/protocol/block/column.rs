//! One column of a block: its name, type and serialization kinds, then its data skipped by type (fixed
//! widths, strings, Nullable, Array, Tuple, LowCardinality, sparse serialization) without decoding values.

use super::Checkpoint;
use crate::native::protocol::error::DecodeError;
use crate::native::protocol::revision::{Feature, Revision};
use crate::native::protocol::types::DataType;
use crate::native::protocol::wire::Reader;

/// LowCardinality index flags (`SerializationLowCardinality`).
const LC_NEED_GLOBAL_DICTIONARY: u64 = 1 << 8;
pub(super) const LC_HAS_ADDITIONAL_KEYS: u64 = 1 << 9;
/// Sparse serialization: the offset that ends a column's offsets stream.
pub(super) const SPARSE_END_OF_GRANULE: u64 = 1 << 62;
/// Serialization kinds written after a column's type when custom serialization is on.
const KIND_DEFAULT: u8 = 0;
pub(super) const KIND_SPARSE: u8 = 1;

/// Skips one column: name, type, serialization kinds, data.
pub(super) fn skip_column(
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
pub(super) fn skip_strings(
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
