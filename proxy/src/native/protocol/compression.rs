//! Compressed frames as they travel inside Data, Totals, Extremes and Scalar packets.
//!
//! A frame is `checksum (16 bytes, CityHash128 v1.0.2 of the rest) | method (1) | compressed size (u32 LE,
//! including these 9 header bytes) | decompressed size (u32 LE) | payload`. Network compression uses LZ4
//! (`0x82`, also for LZ4HC), ZSTD (`0x90`) or none (`0x02`). The proxy reads frames only to find where a block
//! ends; it always checks the checksum of a frame it reads, and it forwards the original bytes.

use super::error::DecodeError;
use super::wire::Reader;

/// Size of the checksum in front of every frame.
pub const CHECKSUM_LEN: usize = 16;
/// Size of method + compressed size + decompressed size.
pub const HEADER_LEN: usize = 9;
/// ClickHouse refuses frames larger than this (`DBMS_MAX_COMPRESSED_SIZE`).
pub const MAX_FRAME_SIZE: u32 = 1 << 30;

/// A network compression method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    None = 0x02,
    Lz4 = 0x82,
    Zstd = 0x90,
}

impl Method {
    fn from_byte(byte: u8) -> Option<Method> {
        match byte {
            0x02 => Some(Method::None),
            0x82 => Some(Method::Lz4),
            0x90 => Some(Method::Zstd),
            _ => None,
        }
    }
}

/// CityHash128 v1.0.2 of a frame's header and payload, in the byte order ClickHouse writes it.
fn checksum(header_and_payload: &[u8]) -> [u8; 16] {
    // cityhash-rs returns the two 64-bit halves swapped relative to ClickHouse's (low, high) pair.
    cityhash_rs::cityhash_102_128(header_and_payload)
        .rotate_right(64)
        .to_le_bytes()
}

/// Reads one frame, verifies its checksum and appends its decompressed bytes to `out`.
pub fn read_frame(r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<Method, DecodeError> {
    let start = r.position();
    let head = r.take(CHECKSUM_LEN + HEADER_LEN)?;
    let method_byte = head[CHECKSUM_LEN];
    let size_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let compressed = size_at(CHECKSUM_LEN + 1);
    let decompressed = size_at(CHECKSUM_LEN + 5);
    let method = Method::from_byte(method_byte).ok_or_else(|| {
        DecodeError::unsupported(format!("compression method 0x{method_byte:02x} at byte {start}"))
    })?;
    if (compressed as usize) < HEADER_LEN || compressed > MAX_FRAME_SIZE || decompressed > MAX_FRAME_SIZE {
        return Err(DecodeError::malformed(format!(
            "compressed frame at byte {start} declares sizes {compressed}/{decompressed}"
        )));
    }
    let payload = r.take(compressed as usize - HEADER_LEN)?;
    let framed = &r_slice_from(r, start)[CHECKSUM_LEN..];
    if checksum(framed) != head[..CHECKSUM_LEN] {
        return Err(DecodeError::malformed(format!(
            "checksum mismatch in compressed frame at byte {start}"
        )));
    }
    let before = out.len();
    match method {
        Method::None => {
            if payload.len() != decompressed as usize {
                return Err(DecodeError::malformed(
                    "uncompressed frame size does not match its header",
                ));
            }
            out.extend_from_slice(payload);
        }
        Method::Lz4 => {
            out.resize(before + decompressed as usize, 0);
            let written = lz4_flex::block::decompress_into(payload, &mut out[before..])
                .map_err(|e| DecodeError::malformed(format!("LZ4 frame at byte {start}: {e}")))?;
            if written != decompressed as usize {
                return Err(DecodeError::malformed(
                    "LZ4 frame decompressed to a different size than declared",
                ));
            }
        }
        Method::Zstd => {
            out.resize(before + decompressed as usize, 0);
            let written = zstd::bulk::decompress_to_buffer(payload, &mut out[before..])
                .map_err(|e| DecodeError::malformed(format!("ZSTD frame at byte {start}: {e}")))?;
            if written != decompressed as usize {
                return Err(DecodeError::malformed(
                    "ZSTD frame decompressed to a different size than declared",
                ));
            }
        }
    }
    Ok(method)
}

/// The bytes a reader consumed since `start` (the reader's buffer is the packet).
fn r_slice_from<'a>(r: &Reader<'a>, start: usize) -> &'a [u8] {
    r.consumed_since(start)
}

/// Compresses `data` into one frame (used for blocks the proxy itself sends, and by tests).
pub fn write_frame(method: Method, data: &[u8], out: &mut Vec<u8>) {
    let payload = match method {
        Method::None => data.to_vec(),
        Method::Lz4 => lz4_flex::block::compress(data),
        Method::Zstd => zstd::bulk::compress(data, 1).unwrap_or_else(|_| data.to_vec()),
    };
    let method = if method == Method::Zstd && payload.len() == data.len() && payload == data {
        Method::None
    } else {
        method
    };
    let mut framed = Vec::with_capacity(HEADER_LEN + payload.len());
    framed.push(method as u8);
    framed.extend_from_slice(&((HEADER_LEN + payload.len()) as u32).to_le_bytes());
    framed.extend_from_slice(&(data.len() as u32).to_le_bytes());
    framed.extend_from_slice(&payload);
    out.extend_from_slice(&checksum(&framed));
    out.extend_from_slice(&framed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_every_method() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for method in [Method::None, Method::Lz4, Method::Zstd] {
            let mut framed = Vec::new();
            write_frame(method, &data, &mut framed);
            let mut out = Vec::new();
            let mut r = Reader::new(&framed);
            assert_eq!(read_frame(&mut r, &mut out).unwrap(), method);
            assert_eq!(out, data);
            assert_eq!(r.position(), framed.len());
            // Any prefix is incomplete, never an error.
            for cut in [0, 10, 25, framed.len() - 1] {
                let mut out = Vec::new();
                assert!(matches!(
                    read_frame(&mut Reader::new(&framed[..cut]), &mut out),
                    Err(DecodeError::Incomplete { .. })
                ));
            }
        }
    }

    #[test]
    fn corrupted_frames_are_rejected() {
        let mut framed = Vec::new();
        write_frame(Method::Lz4, b"hello hello hello hello", &mut framed);
        let last = framed.len() - 1;
        framed[last] ^= 0x55;
        let err = read_frame(&mut Reader::new(&framed), &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, DecodeError::Malformed(ref m) if m.contains("checksum")),
            "{err}"
        );
    }
}
