//! Compressed frames as they travel inside Data, Totals, Extremes and Scalar packets.
//!
//! A frame is `checksum (16 bytes, CityHash128 v1.0.2 of the rest) | method (1) | compressed size (u32 LE,
//! including these 9 header bytes) | decompressed size (u32 LE) | payload`. Network compression uses LZ4
//! (`0x82`, also for LZ4HC), ZSTD (`0x90`) or none (`0x02`). The proxy reads frames only to find where a block
//! ends; it always checks the checksum of a frame it reads, and it forwards the original bytes.

use super::error::DecodeError;
use super::wire::Reader;
use crate::codes;

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
    /// The most bytes `payload_len` compressed bytes can decompress to. LZ4's block format turns one input byte
    /// into at most 255 output bytes (a run of length bytes of 255); ZSTD's densest block is an RLE block, 4
    /// bytes for 128 KiB (`Block_Maximum_Size`, RFC 8878 §3.1.1.2), so 32,768 per byte; a stored frame holds
    /// exactly its payload. A header that declares more is corrupt or hostile.
    pub fn max_expansion(self, payload_len: u64) -> u64 {
        match self {
            Method::None => payload_len,
            Method::Lz4 => payload_len.saturating_mul(255).saturating_add(16),
            Method::Zstd => payload_len.saturating_mul(32_768),
        }
    }

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
pub fn checksum(header_and_payload: &[u8]) -> [u8; 16] {
    // cityhash-rs returns the two 64-bit halves swapped relative to ClickHouse's (low, high) pair.
    cityhash_rs::cityhash_102_128(header_and_payload)
        .rotate_right(64)
        .to_le_bytes()
}

/// One compressed frame whose checksum has been verified; its payload is still compressed.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub method: Method,
    /// The compressed bytes after the 9-byte header.
    pub payload: &'a [u8],
    /// How many bytes the payload decompresses to, as the header declares.
    pub decompressed_size: usize,
    /// Packet offset of the frame, for error messages.
    start: usize,
}

/// Reads one frame and verifies its checksum, without decompressing it.
pub fn next_frame<'a>(r: &mut Reader<'a>) -> Result<Frame<'a>, DecodeError> {
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
        return Err(DecodeError::rejected(
            codes::TOO_LARGE_SIZE_COMPRESSED,
            format!("compressed frame at byte {start} declares sizes {compressed}/{decompressed}"),
        ));
    }
    // Checked from the header alone, before the payload is waited for or anything is allocated for it.
    let payload_len = compressed as usize - HEADER_LEN;
    if decompressed as u64 > method.max_expansion(payload_len as u64) {
        return Err(DecodeError::rejected(
            codes::CANNOT_DECOMPRESS,
            format!(
                "compressed frame at byte {start} declares {decompressed} bytes from {payload_len}, more than {method:?} can expand to"
            ),
        ));
    }
    if method == Method::None && payload_len != decompressed as usize {
        return Err(DecodeError::rejected(
            codes::CANNOT_DECOMPRESS,
            format!(
                "uncompressed frame at byte {start} declares {decompressed} bytes but holds {payload_len}"
            ),
        ));
    }
    let payload = r.take(payload_len)?;
    let framed = &r.consumed_since(start)[CHECKSUM_LEN..];
    if checksum(framed) != head[..CHECKSUM_LEN] {
        return Err(DecodeError::rejected(
            codes::CHECKSUM_DOESNT_MATCH,
            format!("checksum doesn't match in the compressed frame at byte {start}: corrupted data"),
        ));
    }
    Ok(Frame {
        method,
        payload,
        decompressed_size: decompressed as usize,
        start,
    })
}

impl Frame<'_> {
    /// Appends the decompressed bytes to `out`. The caller bounds [`Frame::decompressed_size`] first (the header
    /// was already checked against what the method can expand to); on any error `out` is left as it was.
    pub fn decompress_into(&self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let before = out.len();
        let start = self.start;
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            DecodeError::rejected(
                codes::CANNOT_DECOMPRESS,
                format!("cannot decompress the {what} frame at byte {start}: {e}"),
            )
        };
        let written = match self.method {
            Method::None => {
                out.extend_from_slice(self.payload);
                Ok(self.payload.len())
            }
            Method::Lz4 => {
                out.resize(before + self.decompressed_size, 0);
                lz4_flex::block::decompress_into(self.payload, &mut out[before..])
                    .map_err(|e| corrupt("LZ4", &e))
            }
            Method::Zstd => {
                out.resize(before + self.decompressed_size, 0);
                zstd::bulk::decompress_to_buffer(self.payload, &mut out[before..])
                    .map_err(|e| corrupt("ZSTD", &e))
            }
        };
        match written {
            Ok(written) if written == self.decompressed_size => Ok(()),
            Ok(written) => {
                out.truncate(before);
                Err(DecodeError::rejected(
                    codes::CANNOT_DECOMPRESS,
                    format!(
                        "frame at byte {start} decompressed to {written} bytes, not the {} it declares",
                        self.decompressed_size
                    ),
                ))
            }
            Err(e) => {
                out.truncate(before);
                Err(e)
            }
        }
    }

    /// The first `want` decompressed bytes (fewer when the frame is shorter), decoding no further than needed.
    pub fn decompress_prefix(&self, want: usize) -> Result<Vec<u8>, DecodeError> {
        let want = want.min(self.decompressed_size);
        match self.method {
            Method::None => Ok(self.payload[..want].to_vec()),
            Method::Lz4 => lz4_prefix(self.payload, want).ok_or_else(|| {
                DecodeError::malformed(format!("LZ4 frame at byte {} is corrupt", self.start))
            }),
            Method::Zstd => {
                let mut out = vec![0u8; want];
                let mut decoder = zstd::stream::raw::Decoder::new()
                    .map_err(|e| DecodeError::malformed(format!("ZSTD decoder: {e}")))?;
                let mut input = zstd::stream::raw::InBuffer::around(self.payload);
                let mut filled = 0;
                while filled < want {
                    let mut output = zstd::stream::raw::OutBuffer::around(&mut out[filled..]);
                    let status = zstd::stream::raw::Operation::run(&mut decoder, &mut input, &mut output)
                        .map_err(|e| {
                            DecodeError::malformed(format!("ZSTD frame at byte {}: {e}", self.start))
                        })?;
                    let produced = output.pos();
                    filled += produced;
                    if produced == 0 && (status == 0 || input.pos() == self.payload.len()) {
                        break;
                    }
                }
                out.truncate(filled);
                Ok(out)
            }
        }
    }
}

/// Decodes the first `want` bytes of an LZ4 block (the block format: sequences of a token, literals, and a
/// back-reference). `None` when the block is corrupt.
fn lz4_prefix(input: &[u8], want: usize) -> Option<Vec<u8>> {
    fn length(input: &[u8], i: &mut usize, mut n: usize) -> Option<usize> {
        if n == 15 {
            loop {
                let b = *input.get(*i)?;
                *i += 1;
                n = n.checked_add(b as usize)?;
                if b != 255 {
                    break;
                }
            }
        }
        Some(n)
    }
    let mut out = Vec::with_capacity(want);
    let mut i = 0;
    while out.len() < want && i < input.len() {
        let token = input[i];
        i += 1;
        let literals = length(input, &mut i, (token >> 4) as usize)?;
        out.extend_from_slice(input.get(i..i.checked_add(literals)?)?);
        i += literals;
        if i == input.len() || out.len() >= want {
            break; // the last sequence has literals only
        }
        let offset = u16::from_le_bytes([*input.get(i)?, *input.get(i + 1)?]) as usize;
        i += 2;
        let matched = length(input, &mut i, (token & 15) as usize)?.checked_add(4)?;
        if offset == 0 || offset > out.len() {
            return None;
        }
        for _ in 0..matched.min(want.saturating_sub(out.len())) {
            out.push(out[out.len() - offset]);
        }
    }
    out.truncate(want);
    Some(out)
}

/// Reads one frame, verifies its checksum and appends its decompressed bytes to `out`.
pub fn read_frame(r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<Method, DecodeError> {
    let frame = next_frame(r)?;
    frame.decompress_into(out)?;
    Ok(frame.method)
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
    fn prefixes_decode_without_the_rest() {
        let data: Vec<u8> = (0..50_000u64).flat_map(|i| (i / 3).to_le_bytes()).collect();
        for method in [Method::None, Method::Lz4, Method::Zstd] {
            let mut framed = Vec::new();
            write_frame(method, &data, &mut framed);
            let frame = next_frame(&mut Reader::new(&framed)).unwrap();
            for want in [0, 1, 7, 64, 1000, 65_537, data.len(), data.len() + 10] {
                let prefix = frame.decompress_prefix(want).unwrap();
                assert_eq!(prefix, &data[..want.min(data.len())], "{method:?} {want}");
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
            matches!(err, DecodeError::Rejected { code: codes::CHECKSUM_DOESNT_MATCH, ref reason } if reason.contains("checksum")),
            "{err}"
        );
    }

    /// The probe's frame: a valid checksum over 43 bytes that declare 1 GiB. Refused from the header, before
    /// its payload is even waited for.
    #[test]
    fn impossible_expansion_is_refused_before_the_payload_arrives() {
        for method in [Method::Lz4, Method::Zstd] {
            let payload = vec![0u8; 34];
            let mut framed = vec![method as u8];
            framed.extend_from_slice(&((HEADER_LEN + payload.len()) as u32).to_le_bytes());
            framed.extend_from_slice(&(1u32 << 30).to_le_bytes());
            framed.extend_from_slice(&payload);
            let mut bytes = checksum(&framed).to_vec();
            bytes.extend_from_slice(&framed);
            let header_only = &bytes[..CHECKSUM_LEN + HEADER_LEN];
            for input in [&bytes[..], header_only] {
                let err = next_frame(&mut Reader::new(input)).unwrap_err();
                assert!(
                    matches!(
                        err,
                        DecodeError::Rejected {
                            code: codes::CANNOT_DECOMPRESS,
                            ..
                        }
                    ),
                    "{method:?}: {err}"
                );
            }
        }
        // Real frames are far from the bounds.
        let zeros = vec![0u8; 1 << 20];
        for method in [Method::Lz4, Method::Zstd] {
            let mut framed = Vec::new();
            write_frame(method, &zeros, &mut framed);
            let mut out = Vec::new();
            read_frame(&mut Reader::new(&framed), &mut out).unwrap();
            assert_eq!(out.len(), zeros.len());
        }
    }
}
