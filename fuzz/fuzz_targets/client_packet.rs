//! Feeds arbitrary bytes to the client-packet framer (and the handshake decoders) under every context the
//! proxy uses: it must return a packet, "incomplete" or an error — never panic, never read out of bounds —
//! and a framed packet's length must fit in the input.
#![no_main]

use aurora_proxy::native::protocol::block::FrameState;
use aurora_proxy::native::protocol::client_packet::frame_client_packet;
use aurora_proxy::native::protocol::hello::{addendum_len, ClientHello};
use aurora_proxy::native::protocol::{Context, Revision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let revision = Revision(match selector % 4 {
        0 => 54412, // Debian's 18.16 server: binary settings
        1 => 54429,
        2 => 54460,
        _ => 54469, // the proxy's maximum
    });
    let ctx = Context { revision, compression: selector & 0x80 != 0 };
    let mut state = FrameState::default();
    if let Ok((_, len)) = frame_client_packet(bytes, &ctx, &mut state) {
        assert!(len <= bytes.len());
    }
    if let Ok((hello, len)) = ClientHello::decode(bytes) {
        assert!(len <= bytes.len());
        let _ = hello.encode_with_revision(revision);
    }
    if let Ok(len) = addendum_len(bytes, revision) {
        assert!(len <= bytes.len());
    }
});
