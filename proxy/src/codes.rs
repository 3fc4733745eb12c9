//! ClickHouse error codes the proxy raises itself, on both protocols: the shared list
//! ([`aurora_common::codes`], which mirrors ClickHouse's `src/Common/ErrorCodes.cpp`), and the names ClickHouse
//! prints beside them.

pub use aurora_common::codes::*;

/// The name ClickHouse prints in parentheses after the message, for the codes the proxy raises.
pub fn name(code: i32) -> &'static str {
    match code {
        BAD_ARGUMENTS => "BAD_ARGUMENTS",
        CHECKSUM_DOESNT_MATCH => "CHECKSUM_DOESNT_MATCH",
        UNKNOWN_PACKET_FROM_CLIENT => "UNKNOWN_PACKET_FROM_CLIENT",
        TOO_LARGE_STRING_SIZE => "TOO_LARGE_STRING_SIZE",
        TOO_LARGE_SIZE_COMPRESSED => "TOO_LARGE_SIZE_COMPRESSED",
        CANNOT_DECOMPRESS => "CANNOT_DECOMPRESS",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        UNKNOWN_TABLE => "UNKNOWN_TABLE",
        INCORRECT_DATA => "INCORRECT_DATA",
        TIMEOUT_EXCEEDED => "TIMEOUT_EXCEEDED",
        UNKNOWN_USER => "UNKNOWN_USER",
        WRONG_PASSWORD => "WRONG_PASSWORD",
        IP_ADDRESS_NOT_ALLOWED => "IP_ADDRESS_NOT_ALLOWED",
        TOO_MANY_SIMULTANEOUS_QUERIES => "TOO_MANY_SIMULTANEOUS_QUERIES",
        ACCESS_DENIED => "ACCESS_DENIED",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        CANNOT_READ_FROM_SOCKET => "CANNOT_READ_FROM_SOCKET",
        SOCKET_TIMEOUT => "SOCKET_TIMEOUT",
        NETWORK_ERROR => "NETWORK_ERROR",
        READONLY => "READONLY",
        QUERY_IS_TOO_LARGE => "QUERY_IS_TOO_LARGE",
        UNSUPPORTED_URI_SCHEME => "UNSUPPORTED_URI_SCHEME",
        AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
        _ => "UNKNOWN_EXCEPTION",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_the_proxy_sends_are_clickhouses() {
        // ClickHouse's own numbers (until 2026-12-03 the proxy sent 270 and 101 under these names).
        assert_eq!(
            (TOO_LARGE_SIZE_COMPRESSED, name(39)),
            (39, "TOO_LARGE_SIZE_COMPRESSED")
        );
        assert_eq!(
            (UNKNOWN_PACKET_FROM_CLIENT, name(99)),
            (99, "UNKNOWN_PACKET_FROM_CLIENT")
        );
        assert_eq!((UNKNOWN_TABLE, name(60)), (60, "UNKNOWN_TABLE"));
        assert_eq!(name(UNKNOWN_DATABASE), "UNKNOWN_EXCEPTION");
    }
}
