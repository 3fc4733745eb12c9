//! Primitive encodings of the native protocol: LEB128 variable-length integers, little-endian fixed-width
//! integers and length-prefixed strings.
//!
//! [`Reader`] reads from a byte slice that may hold only part of a packet: running out of bytes is the
//! [`DecodeError::Incomplete`] error with the number of bytes the reader knows it still needs, so the connection
//! layer can read more from the socket and try again. Nothing here panics on any input.

use super::error::DecodeError;

/// Longest string the proxy accepts in a packet field other than column data (names, queries, messages).
/// ClickHouse itself caps strings at 1 GiB; a query text larger than this is refused by the server anyway.
pub const MAX_STRING_LEN: u64 = 1 << 30;

/// A cursor over bytes that may end before the value does.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Moves to byte `pos` of the buffer (a position this reader or an earlier one on the same bytes reached).
    pub fn seek(&mut self, pos: usize) -> Result<(), DecodeError> {
        if pos > self.buf.len() {
            return Err(DecodeError::Incomplete { needed: pos });
        }
        self.pos = pos;
        Ok(())
    }

    /// The bytes between `start` and the current position.
    pub fn consumed_since(&self, start: usize) -> &'a [u8] {
        &self.buf[start.min(self.pos)..self.pos]
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// An error saying `n` more bytes are needed beyond the current position.
    pub fn incomplete(&self, n: usize) -> DecodeError {
        DecodeError::Incomplete {
            needed: self.pos.saturating_add(n),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(self.incomplete(n));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// Skips `count` items of `width` bytes each, refusing sizes that overflow.
    pub fn skip_items(&mut self, count: u64, width: u64) -> Result<(), DecodeError> {
        let total = count
            .checked_mul(width)
            .and_then(|t| usize::try_from(t).ok())
            .ok_or_else(|| {
                DecodeError::malformed(format!("column of {count} values of {width} bytes is too large"))
            })?;
        self.take(total).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }

    pub fn i32_le(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// An unsigned LEB128 integer of at most 10 bytes, as ClickHouse's `readVarUInt`.
    pub fn varuint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::malformed(
            "variable-length integer longer than 10 bytes",
        ))
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varuint()?;
        if len > MAX_STRING_LEN {
            return Err(DecodeError::malformed(format!(
                "string of {len} bytes exceeds the 1 GiB limit"
            )));
        }
        self.take(len as usize)
    }

    /// A length-prefixed byte string of at most `max` bytes, refused as soon as its length is read: nothing
    /// waits for (or buffers) the bytes of a string that is too long. ClickHouse's `readStringBinary` with a
    /// size limit answers such a string with code 131 (`TOO_LARGE_STRING_SIZE`).
    pub fn bytes_at_most(&mut self, max: u64, what: &str) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.varuint()?;
        if len > max {
            return Err(DecodeError::rejected(
                crate::codes::TOO_LARGE_STRING_SIZE,
                format!("{what} of {len} bytes is longer than the {max} bytes allowed"),
            ));
        }
        self.pos = start;
        self.bytes()
    }

    /// A length-prefixed string that must be UTF-8 (names, types, messages).
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::malformed(format!("string at byte {start} is not UTF-8")))
    }
}

/// Appends an unsigned LEB128 integer.
pub fn put_varuint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a length-prefixed string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varuint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varuint_round_trips_and_reports_missing_bytes() {
        for value in [0u64, 1, 127, 128, 300, 54468, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varuint(&mut out, value);
            assert_eq!(Reader::new(&out).varuint().unwrap(), value);
            let short = &out[..out.len() - 1];
            assert!(matches!(
                Reader::new(short).varuint(),
                Err(DecodeError::Incomplete { .. })
            ));
        }
        let too_long = [0xffu8; 11];
        assert!(matches!(
            Reader::new(&too_long).varuint(),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn string_length_is_checked_before_reading() {
        let mut out = Vec::new();
        put_varuint(&mut out, 10);
        out.extend_from_slice(b"abc");
        assert_eq!(
            Reader::new(&out).string(),
            Err(DecodeError::Incomplete { needed: 11 })
        );
        let mut huge = Vec::new();
        put_varuint(&mut huge, u64::MAX);
        assert!(matches!(
            Reader::new(&huge).bytes(),
            Err(DecodeError::Malformed(_))
        ));
        // A bounded string is refused from its length alone, before its bytes arrive.
        let mut long = Vec::new();
        put_varuint(&mut long, 200 << 20);
        assert!(matches!(
            Reader::new(&long).bytes_at_most(64 << 10, "user"),
            Err(DecodeError::Rejected { code: 131, .. })
        ));
        let huge_items = Reader::new(&[]).skip_items(u64::MAX, 16);
        assert!(matches!(huge_items, Err(DecodeError::Malformed(_))));
    }
}
