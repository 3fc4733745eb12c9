//! The server Exception packet: decoded for logs and metrics, encoded for errors the proxy raises itself.

use super::error::DecodeError;
use super::packets::ServerCode;
use super::wire::{put_bytes, put_varuint, Reader};

/// Nested exceptions deeper than this are malformed.
const MAX_NESTING: usize = 32;

/// The outermost exception of an Exception packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerException {
    pub code: i32,
    pub name: String,
    pub message: String,
}

/// Decodes an Exception body (after the packet code), nested ones included.
pub fn decode_exception(r: &mut Reader<'_>) -> Result<ServerException, DecodeError> {
    let mut outer = None;
    for _ in 0..MAX_NESTING {
        let code = r.i32_le()?;
        let name = String::from_utf8_lossy(r.bytes()?).into_owned();
        let message = String::from_utf8_lossy(r.bytes()?).into_owned();
        r.bytes()?; // stack trace
        let has_nested = r.bool()?;
        outer.get_or_insert(ServerException { code, name, message });
        if !has_nested {
            return Ok(outer.unwrap_or_else(|| unreachable!("set above")));
        }
    }
    Err(DecodeError::malformed("exception nested too deeply"))
}

/// Encodes a whole Exception packet as ClickHouse writes it.
pub fn encode_exception(code: i32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 32);
    put_varuint(&mut out, ServerCode::Exception as u64);
    out.extend_from_slice(&code.to_le_bytes());
    put_bytes(&mut out, b"DB::Exception");
    let message = crate::dialect::native_message(crate::dialect::current(), "DB::Exception", message);
    put_bytes(&mut out, message.as_bytes());
    put_bytes(&mut out, b"");
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    #[test]
    fn encoded_exceptions_decode() {
        let bytes = encode_exception(codes::NOT_IMPLEMENTED, "ASK is not configured");
        let mut r = Reader::new(&bytes[1..]);
        let e = decode_exception(&mut r).unwrap();
        assert_eq!(
            (e.code, e.name.as_str(), e.message.as_str()),
            (48, "DB::Exception", "ASK is not configured")
        );
        assert_eq!(r.position(), bytes.len() - 1);
    }
}
