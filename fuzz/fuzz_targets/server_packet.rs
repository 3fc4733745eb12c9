//! Feeds arbitrary bytes to the server-packet framer and the server Hello decoder: a broken or hostile
//! upstream must not crash the proxy either.
#![no_main]

use aurora_proxy::native::protocol::block::FrameState;
use aurora_proxy::native::protocol::hello::ServerHello;
use aurora_proxy::native::protocol::server_packet::frame_server_packet;
use aurora_proxy::native::protocol::{Context, Revision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let revision = Revision(if selector & 1 == 0 { 54412 } else { 54469 });
    let ctx = Context { revision, compression: selector & 2 != 0 };
    let mut state = FrameState::default();
    if let Ok((_, len)) = frame_server_packet(bytes, &ctx, &mut state) {
        assert!(len <= bytes.len());
    }
    if let Ok((hello, len)) = ServerHello::decode(bytes, revision) {
        assert!(len <= bytes.len());
        let _ = hello.encode_with_revision(revision);
    }
});
