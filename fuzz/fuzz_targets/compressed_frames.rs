//! The compressed-frame reader with attacker-chosen size fields: a frame is refused from its header when its
//! sizes cannot be true, nothing is decompressed beyond the allowance a connection holds, and a frame that is
//! decompressed yields exactly the bytes it declares — never more than its method can expand to.
#![no_main]

use aurora_proxy::native::protocol::block::{skip_block_body, FrameState};
use aurora_proxy::native::protocol::compression::{checksum, next_frame, Method};
use aurora_proxy::native::protocol::wire::Reader;
use aurora_proxy::native::protocol::{DecodeError, Revision};
use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer reaches it often.
const ALLOWANCE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    // The fuzzer rarely finds a valid CityHash128: the first selector bit lets it skip to well-formed frames by
    // having the target fix the checksum itself, so the size fields behind it get explored.
    let mut owned = bytes.to_vec();
    if selector & 1 == 1 && owned.len() >= 25 {
        let compressed = u32::from_le_bytes([owned[17], owned[18], owned[19], owned[20]]) as usize;
        if (9..=owned.len() - 16).contains(&compressed) {
            let sum = checksum(&owned[16..16 + compressed]);
            owned[..16].copy_from_slice(&sum);
        }
    }
    let mut r = Reader::new(&owned);
    if let Ok(frame) = next_frame(&mut r) {
        assert!(r.position() <= owned.len());
        assert!(frame.decompressed_size as u64 <= frame.method.max_expansion(frame.payload.len() as u64));
        if frame.method == Method::None {
            assert_eq!(frame.decompressed_size, frame.payload.len());
        }
        if frame.decompressed_size <= ALLOWANCE {
            let mut out = Vec::new();
            if frame.decompress_into(&mut out).is_ok() {
                assert_eq!(out.len(), frame.decompressed_size);
            } else {
                assert!(out.is_empty());
            }
        }
    }
    let revision = Revision(if selector & 2 == 0 { 54412 } else { 54469 });
    let mut state = FrameState::default();
    state.set_allowance(ALLOWANCE);
    match skip_block_body(&mut Reader::new(&owned), revision, true, &mut state) {
        Err(DecodeError::OverAllowance { needed }) => assert!(needed > ALLOWANCE),
        _ => {}
    }
    assert!(state.held() <= ALLOWANCE, "held {} bytes", state.held());
});
