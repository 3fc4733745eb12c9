//! ClickHouse error codes by name: the ones Aurora raises itself or looks for in what a server answers.
//!
//! Numbers and names mirror ClickHouse's `src/Common/ErrorCodes.cpp` (`dbms/src/Common/ErrorCodes.cpp` in the
//! 18.x servers, with the same values); a code is added here when a crate needs it, never written as a bare
//! number in logic. ClickHouse prints the name in parentheses after the message (since 21.8), as
//! [`crate::exception`] reads it.

/// NO_SUCH_COLUMN_IN_TABLE
pub const NO_SUCH_COLUMN_IN_TABLE: i32 = 16;
/// BAD_ARGUMENTS
pub const BAD_ARGUMENTS: i32 = 36;
/// TOO_LARGE_SIZE_COMPRESSED
pub const TOO_LARGE_SIZE_COMPRESSED: i32 = 39;
/// CHECKSUM_DOESNT_MATCH
pub const CHECKSUM_DOESNT_MATCH: i32 = 40;
/// NOT_IMPLEMENTED
pub const NOT_IMPLEMENTED: i32 = 48;
/// UNKNOWN_TABLE
pub const UNKNOWN_TABLE: i32 = 60;
/// SYNTAX_ERROR
pub const SYNTAX_ERROR: i32 = 62;
/// UNKNOWN_DATABASE
pub const UNKNOWN_DATABASE: i32 = 81;
/// CANNOT_READ_FROM_SOCKET
pub const CANNOT_READ_FROM_SOCKET: i32 = 95;
/// UNKNOWN_PACKET_FROM_CLIENT
pub const UNKNOWN_PACKET_FROM_CLIENT: i32 = 99;
/// UNEXPECTED_PACKET_FROM_CLIENT
pub const UNEXPECTED_PACKET_FROM_CLIENT: i32 = 101;
/// INCORRECT_DATA
pub const INCORRECT_DATA: i32 = 117;
/// TOO_LARGE_STRING_SIZE
pub const TOO_LARGE_STRING_SIZE: i32 = 131;
/// TIMEOUT_EXCEEDED
pub const TIMEOUT_EXCEEDED: i32 = 159;
/// A login with a user name the server does not know (older servers; newer ones answer 516 for both).
pub const UNKNOWN_USER: i32 = 192;
/// A login with the wrong password (older servers; newer ones answer 516 for both).
pub const WRONG_PASSWORD: i32 = 193;
/// A login from an address the user's networks do not allow.
pub const IP_ADDRESS_NOT_ALLOWED: i32 = 195;
/// More queries at once than allowed (ClickHouse's max_concurrent_queries; the proxy's per-user limits).
pub const TOO_MANY_SIMULTANEOUS_QUERIES: i32 = 202;
/// SOCKET_TIMEOUT
pub const SOCKET_TIMEOUT: i32 = 209;
/// NETWORK_ERROR
pub const NETWORK_ERROR: i32 = 210;
/// The statement writes and the connection may only read.
pub const READONLY: i32 = 164;
/// QUERY_IS_TOO_LARGE
pub const QUERY_IS_TOO_LARGE: i32 = 229;
/// CANNOT_COMPRESS
pub const CANNOT_COMPRESS: i32 = 270;
/// CANNOT_DECOMPRESS
pub const CANNOT_DECOMPRESS: i32 = 271;
/// UNSUPPORTED_URI_SCHEME
pub const UNSUPPORTED_URI_SCHEME: i32 = 422;
/// ACCESS_DENIED
pub const ACCESS_DENIED: i32 = 497;
/// AUTHENTICATION_FAILED
pub const AUTHENTICATION_FAILED: i32 = 516;
