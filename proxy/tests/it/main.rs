//! In-process tests of the native session: the proxy's real session code between a client socket and a
//! scripted upstream on 127.0.0.1:0, which reads what the proxy forwards and answers with server packets
//! written by hand. No ClickHouse runs: these tests pin the session's own behaviour (handshake rewriting, byte
//! for byte relay, ASK interception, cancellation, malformed input) where the e2e suites cannot see inside.
//!
//! The client side replays the golden packets of `fixtures/native/golden/` (clickhouse-driver 0.2.11,
//! revision 54468); the upstream announces the same revision, as the capture server did.

mod harness;
mod session;
