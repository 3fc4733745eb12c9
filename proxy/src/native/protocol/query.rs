//! The Query packet: where its SQL text is, and whether the blocks that follow are compressed.
//!
//! Field order (ClickHouse `Connection::sendQuery`, `TCPHandler::receiveQuery`): query id, ClientInfo, settings,
//! inter-server secret, stage, compression, query text, parameters. Every gated field follows the negotiated
//! revision. The proxy decodes only what it needs and forwards the packet's original bytes.

use super::error::DecodeError;
use super::revision::{Feature, Revision};
use super::wire::Reader;

/// What the proxy needs to know about a Query packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPacket<'a> {
    pub query_id: &'a [u8],
    /// The processing stage the client asked for (2 = complete).
    pub stage: u64,
    /// Whether Data blocks of this query travel compressed, in both directions.
    pub compression: bool,
    /// The SQL text, as bytes (ClickHouse accepts any bytes in string literals).
    pub query: &'a [u8],
}

/// ClientInfo interface values (`ClientInfo::Interface`).
const INTERFACE_TCP: u8 = 1;
const INTERFACE_HTTP: u8 = 2;

/// Decodes a Query packet body (after its code).
pub fn decode_query<'a>(r: &mut Reader<'a>, revision: Revision) -> Result<QueryPacket<'a>, DecodeError> {
    let query_id = r.bytes()?;
    if revision.has(Feature::ClientInfo) {
        skip_client_info(r, revision)?;
    }
    skip_settings(r, revision)?;
    if revision.has(Feature::InterserverSecret) {
        r.bytes()?;
    }
    let stage = r.varuint()?;
    let compression = match r.varuint()? {
        0 => false,
        1 => true,
        other => return Err(DecodeError::malformed(format!("query compression flag {other}"))),
    };
    let query = r.bytes()?;
    if revision.has(Feature::Parameters) {
        skip_string_settings(r)?;
    }
    Ok(QueryPacket {
        query_id,
        stage,
        compression,
        query,
    })
}

/// `ClientInfo::write` up to the proxy's maximum revision.
fn skip_client_info(r: &mut Reader<'_>, revision: Revision) -> Result<(), DecodeError> {
    let query_kind = r.u8()?;
    if query_kind == 0 {
        return Ok(());
    }
    r.bytes()?; // initial user
    r.bytes()?; // initial query id
    r.bytes()?; // initial address
    if revision.has(Feature::InitialQueryStartTime) {
        r.u64_le()?;
    }
    let interface = r.u8()?;
    match interface {
        INTERFACE_TCP => {
            r.bytes()?; // OS user
            r.bytes()?; // client host name
            r.bytes()?; // client name
            r.varuint()?; // major
            r.varuint()?; // minor
            r.varuint()?; // client's own revision
        }
        INTERFACE_HTTP => {
            r.u8()?; // method
            r.bytes()?; // user agent
            if revision.has(Feature::XForwardedFor) {
                r.bytes()?;
            }
            if revision.has(Feature::Referer) {
                r.bytes()?;
            }
        }
        _ => {}
    }
    if revision.has(Feature::QuotaKeyInClientInfo) {
        r.bytes()?;
    }
    if revision.has(Feature::DistributedDepth) {
        r.varuint()?;
    }
    if interface == INTERFACE_TCP && revision.has(Feature::VersionPatch) {
        r.varuint()?;
    }
    if revision.has(Feature::OpenTelemetry) && r.bool()? {
        r.take(16 + 8)?; // trace id, span id
        r.bytes()?; // tracestate
        r.u8()?; // flags
    }
    if revision.has(Feature::ParallelReplicas) {
        r.varuint()?;
        r.varuint()?;
        r.varuint()?;
    }
    Ok(())
}

fn skip_settings(r: &mut Reader<'_>, revision: Revision) -> Result<(), DecodeError> {
    if revision.has(Feature::SettingsAsStrings) {
        skip_string_settings(r)
    } else {
        skip_binary_settings(r)
    }
}

/// `(name, flags, value)` triples ending with an empty name.
fn skip_string_settings(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    while !r.bytes()?.is_empty() {
        r.varuint()?;
        r.bytes()?;
    }
    Ok(())
}

/// Old servers (before `SettingsAsStrings`) read each value in its setting type's binary form: a string for
/// floats, enums, strings and chars, a (zig-zag or plain) varint for all others. The two varint forms have the
/// same length, so only the names whose values are strings matter. Names from ClickHouse 18.x–19.x `Settings.h`.
const STRING_VALUED_SETTINGS: &[&str] = &[
    "count_distinct_implementation",
    "date_time_input_format",
    "distinct_overflow_mode",
    "distributed_product_mode",
    "format_csv_delimiter",
    "format_schema",
    "global_subqueries_method",
    "group_by_overflow_mode",
    "input_format_allow_errors_ratio",
    "join_algorithm",
    "join_default_strictness",
    "join_overflow_mode",
    "load_balancing",
    "max_streams_to_max_threads_ratio",
    "memory_tracker_fault_probability",
    "network_compression_method",
    "read_overflow_mode",
    "result_overflow_mode",
    "send_logs_level",
    "set_overflow_mode",
    "sort_overflow_mode",
    "timeout_overflow_mode",
    "totals_auto_threshold",
    "totals_mode",
    "transfer_overflow_mode",
];

fn skip_binary_settings(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    loop {
        let name = r.bytes()?;
        if name.is_empty() {
            return Ok(());
        }
        let is_string = std::str::from_utf8(name).is_ok_and(|n| STRING_VALUED_SETTINGS.contains(&n));
        if is_string {
            r.bytes()?;
        } else {
            r.varuint()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::protocol::wire::{put_bytes, put_varuint};

    fn query_body(revision: Revision, settings: &[u8], query: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, b"qid-1");
        if revision.has(Feature::ClientInfo) {
            out.push(1); // initial query
            put_bytes(&mut out, b"");
            put_bytes(&mut out, b"");
            put_bytes(&mut out, b"0.0.0.0:0");
            if revision.has(Feature::InitialQueryStartTime) {
                out.extend_from_slice(&0u64.to_le_bytes());
            }
            out.push(INTERFACE_TCP);
            put_bytes(&mut out, b"me");
            put_bytes(&mut out, b"host");
            put_bytes(&mut out, b"ClickHouse client");
            put_varuint(&mut out, 24);
            put_varuint(&mut out, 3);
            put_varuint(&mut out, revision.0);
            put_bytes(&mut out, b"");
            if revision.has(Feature::DistributedDepth) {
                put_varuint(&mut out, 0);
            }
            put_varuint(&mut out, 1); // patch
            if revision.has(Feature::OpenTelemetry) {
                out.push(0);
            }
            if revision.has(Feature::ParallelReplicas) {
                out.extend_from_slice(&[0, 0, 0]);
            }
        }
        out.extend_from_slice(settings);
        if revision.has(Feature::InterserverSecret) {
            put_bytes(&mut out, b"");
        }
        put_varuint(&mut out, 2);
        put_varuint(&mut out, 1);
        put_bytes(&mut out, query.as_bytes());
        if revision.has(Feature::Parameters) {
            put_bytes(&mut out, b"x");
            put_varuint(&mut out, 2);
            put_bytes(&mut out, b"'1'");
            put_bytes(&mut out, b"");
        }
        out
    }

    #[test]
    fn finds_the_query_text_at_old_and_new_revisions() {
        let mut binary = Vec::new();
        put_bytes(&mut binary, b"max_threads");
        put_varuint(&mut binary, 4);
        put_bytes(&mut binary, b"load_balancing");
        put_bytes(&mut binary, b"random");
        put_bytes(&mut binary, b"network_zstd_compression_level");
        put_varuint(&mut binary, 2); // zig-zag 1
        put_bytes(&mut binary, b"");
        let mut strings = Vec::new();
        put_bytes(&mut strings, b"max_threads");
        put_varuint(&mut strings, 1);
        put_bytes(&mut strings, b"4");
        put_bytes(&mut strings, b"");
        for (revision, settings) in [(Revision(54412), &binary), (Revision(54468), &strings)] {
            let body = query_body(revision, settings, "SELECT 1");
            let mut r = Reader::new(&body);
            let q = decode_query(&mut r, revision).unwrap();
            assert_eq!(q.query, b"SELECT 1");
            assert!(q.compression);
            assert_eq!(q.stage, 2);
            assert_eq!(r.position(), body.len());
            for cut in 0..body.len() {
                assert!(matches!(
                    decode_query(&mut Reader::new(&body[..cut]), revision),
                    Err(DecodeError::Incomplete { .. })
                ));
            }
        }
    }
}
