//! ClickHouse error codes the proxy raises itself, on both protocols (`src/Common/ErrorCodes.cpp`), with the
//! names ClickHouse prints beside them.

pub const BAD_ARGUMENTS: i32 = 36;
pub const CHECKSUM_DOESNT_MATCH: i32 = 40;
pub const UNKNOWN_PACKET_FROM_CLIENT: i32 = 101;
pub const TOO_LARGE_STRING_SIZE: i32 = 131;
pub const TOO_LARGE_SIZE_COMPRESSED: i32 = 270;
pub const CANNOT_DECOMPRESS: i32 = 271;
pub const NOT_IMPLEMENTED: i32 = 48;
pub const UNKNOWN_TABLE: i32 = 60;
pub const SYNTAX_ERROR: i32 = 62;
pub const INCORRECT_DATA: i32 = 117;
pub const TIMEOUT_EXCEEDED: i32 = 159;
pub const ACCESS_DENIED: i32 = 497;
pub const CANNOT_READ_FROM_SOCKET: i32 = 95;
pub const SOCKET_TIMEOUT: i32 = 209;
pub const NETWORK_ERROR: i32 = 210;
pub const QUERY_IS_TOO_LARGE: i32 = 229;
pub const UNSUPPORTED_URI_SCHEME: i32 = 422;
pub const AUTHENTICATION_FAILED: i32 = 516;

/// The name ClickHouse prints in parentheses after the message, for the codes above.
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
        ACCESS_DENIED => "ACCESS_DENIED",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        CANNOT_READ_FROM_SOCKET => "CANNOT_READ_FROM_SOCKET",
        SOCKET_TIMEOUT => "SOCKET_TIMEOUT",
        NETWORK_ERROR => "NETWORK_ERROR",
        QUERY_IS_TOO_LARGE => "QUERY_IS_TOO_LARGE",
        UNSUPPORTED_URI_SCHEME => "UNSUPPORTED_URI_SCHEME",
        AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
        _ => "UNKNOWN_EXCEPTION",
    }
}
