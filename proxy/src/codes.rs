//! ClickHouse error codes the proxy raises itself, on both protocols (`src/Common/ErrorCodes.cpp`), with the
//! names ClickHouse prints beside them.

pub const NOT_IMPLEMENTED: i32 = 48;
pub const SYNTAX_ERROR: i32 = 62;
pub const CANNOT_READ_FROM_SOCKET: i32 = 95;
pub const NETWORK_ERROR: i32 = 210;
pub const QUERY_IS_TOO_LARGE: i32 = 229;
pub const UNSUPPORTED_URI_SCHEME: i32 = 422;
pub const AUTHENTICATION_FAILED: i32 = 516;

/// The name ClickHouse prints in parentheses after the message, for the codes above.
pub fn name(code: i32) -> &'static str {
    match code {
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        CANNOT_READ_FROM_SOCKET => "CANNOT_READ_FROM_SOCKET",
        NETWORK_ERROR => "NETWORK_ERROR",
        QUERY_IS_TOO_LARGE => "QUERY_IS_TOO_LARGE",
        UNSUPPORTED_URI_SCHEME => "UNSUPPORTED_URI_SCHEME",
        AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
        _ => "UNKNOWN_EXCEPTION",
    }
}
