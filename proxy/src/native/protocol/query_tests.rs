//! Tests of `query.rs`.

use super::*;
use crate::native::protocol::client_info::INTERFACE_TCP;
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

/// A Query with every field the revision carries set to something other than its default.
fn full_query(revision: Revision) -> Query {
    let settings = if revision.has(Feature::SettingsAsStrings) {
        Settings::Strings(vec![
            Setting {
                name: b"max_threads".to_vec(),
                flags: 0,
                value: b"4".to_vec(),
            },
            Setting {
                name: b"send_logs_level".to_vec(),
                flags: Setting::IMPORTANT,
                value: b"trace".to_vec(),
            },
        ])
    } else {
        let mut raw = Vec::new();
        put_bytes(&mut raw, b"max_threads");
        put_varuint(&mut raw, 4);
        put_bytes(&mut raw, b"load_balancing");
        put_bytes(&mut raw, b"random");
        put_bytes(&mut raw, b"");
        Settings::Binary(raw)
    };
    let has = |feature| revision.has(feature);
    let client_info = ClientInfo {
        kind: QueryKind::Initial,
        initial_user: b"alice".to_vec(),
        initial_query_id: b"qid-0".to_vec(),
        initial_address: b"10.0.0.1:9000".to_vec(),
        initial_query_start_time_us: if has(Feature::InitialQueryStartTime) {
            1_700_000_000_000_000
        } else {
            0
        },
        interface: Interface::Tcp(TcpClient {
            os_user: b"me".to_vec(),
            client_hostname: b"host".to_vec(),
            client_name: b"ClickHouse client".to_vec(),
            version_major: 24,
            version_minor: 3,
            revision: revision.0,
            version_patch: 7,
        }),
        quota_key: b"quota".to_vec(),
        distributed_depth: if has(Feature::DistributedDepth) { 1 } else { 0 },
        trace_context: has(Feature::OpenTelemetry).then(|| TraceContext {
            trace_id: *b"0123456789abcdef",
            span_id: 0x0102_0304_0506_0708,
            tracestate: b"vendor=x".to_vec(),
            trace_flags: 1,
        }),
        parallel_replicas: if has(Feature::ParallelReplicas) {
            ParallelReplicas {
                collaborate_with_initiator: 1,
                count_participating_replicas: 3,
                number_of_current_replica: 2,
            }
        } else {
            ParallelReplicas::default()
        },
    };
    Query {
        query_id: b"qid-1".to_vec(),
        client_info: has(Feature::ClientInfo).then_some(client_info),
        settings,
        interserver_secret: has(Feature::InterserverSecret).then(Vec::new),
        stage: Query::STAGE_COMPLETE,
        compression: true,
        query: b"SELECT {x:String}".to_vec(),
        parameters: has(Feature::Parameters).then(|| {
            vec![Setting {
                name: b"x".to_vec(),
                flags: Setting::CUSTOM,
                value: b"'it\\'s'".to_vec(),
            }]
        }),
    }
}

/// Encodes, checks that both decoders read it all back, and that every strict prefix is incomplete.
fn assert_round_trip(query: &Query, revision: Revision) {
    let mut bytes = Vec::new();
    query.encode(revision, &mut bytes);
    assert_eq!(bytes[0], ClientCode::Query as u8);
    let body = &bytes[1..];
    let mut r = Reader::new(body);
    let decoded = Query::decode(&mut r, revision).unwrap();
    assert_eq!(&decoded, query, "at {revision}");
    assert_eq!(r.position(), body.len());
    let mut again = Vec::new();
    decoded.encode(revision, &mut again);
    assert_eq!(again, bytes);
    let mut r = Reader::new(body);
    let fast = decode_query(&mut r, revision).unwrap();
    assert_eq!(r.position(), body.len());
    assert_eq!(fast.query, &query.query[..]);
    assert_eq!(fast.query_id, &query.query_id[..]);
    assert_eq!((fast.stage, fast.compression), (query.stage, query.compression));
    for cut in 0..body.len() {
        assert!(
            matches!(
                Query::decode(&mut Reader::new(&body[..cut]), revision),
                Err(DecodeError::Incomplete { .. })
            ),
            "prefix of {cut} bytes at {revision}"
        );
    }
}

#[test]
fn full_query_round_trips_at_old_and_new_revisions() {
    for revision in [54412, 54429, 54460, 54468, 54469].map(Revision) {
        let query = full_query(revision);
        assert_round_trip(&query, revision);
    }
    let old = full_query(Revision(54412));
    assert!(matches!(old.settings, Settings::Binary(_)));
    assert_eq!(old.parameters, None);
    let new = full_query(Revision(54468));
    assert!(new.client_info.unwrap().trace_context.is_some());
}

#[test]
fn http_other_and_no_query_client_infos_round_trip() {
    for revision in [54412, 54443, 54460].map(Revision) {
        let mut query = full_query(revision);
        let info = query.client_info.as_mut().unwrap();
        info.interface = Interface::Http(HttpClient {
            method: 2,
            user_agent: b"curl/8".to_vec(),
            forwarded_for: if revision.has(Feature::XForwardedFor) {
                b"1.2.3.4".to_vec()
            } else {
                Vec::new()
            },
            referer: if revision.has(Feature::Referer) {
                b"https://example.com".to_vec()
            } else {
                Vec::new()
            },
        });
        assert_round_trip(&query, revision);
        query.client_info.as_mut().unwrap().interface = Interface::Other(5);
        assert_round_trip(&query, revision);
        query.client_info = Some(ClientInfo::default());
        assert_round_trip(&query, revision);
    }
}

#[test]
fn absent_optional_fields_are_written_empty() {
    let revision = Revision(54468);
    let query = Query {
        query_id: Vec::new(),
        client_info: None,
        settings: Settings::default(),
        interserver_secret: None,
        stage: Query::STAGE_COMPLETE,
        compression: false,
        query: b"SELECT 1".to_vec(),
        parameters: None,
    };
    let mut bytes = Vec::new();
    query.encode(revision, &mut bytes);
    let decoded = Query::decode(&mut Reader::new(&bytes[1..]), revision).unwrap();
    assert_eq!(decoded.client_info, Some(ClientInfo::default()));
    assert_eq!(decoded.interserver_secret, Some(Vec::new()));
    assert_eq!(decoded.parameters, Some(Vec::new()));
    assert_eq!(decoded.settings, Settings::Strings(Vec::new()));
    // Empty settings are a bare terminator, which old servers read as an empty binary list.
    let mut old = Vec::new();
    query.encode(Revision(54412), &mut old);
    let decoded = Query::decode(&mut Reader::new(&old[1..]), Revision(54412)).unwrap();
    assert_eq!(decoded.settings, Settings::Binary(vec![0]));
}

#[test]
fn unknown_query_kind_and_compression_flag_are_malformed() {
    let revision = Revision(54468);
    let mut bytes = Vec::new();
    full_query(revision).encode(revision, &mut bytes);
    let kind_at = 1 + 1 + b"qid-1".len();
    let mut bad_kind = bytes.clone();
    bad_kind[kind_at] = 3;
    assert!(matches!(
        Query::decode(&mut Reader::new(&bad_kind[1..]), revision),
        Err(DecodeError::Malformed(_))
    ));
    let mut no_compression = full_query(revision);
    no_compression.compression = false;
    let mut plain = Vec::new();
    no_compression.encode(revision, &mut plain);
    // The compression flag is the only byte that differs.
    let at = bytes.iter().zip(&plain).position(|(a, b)| a != b).unwrap();
    plain[at] = 2;
    assert!(matches!(
        Query::decode(&mut Reader::new(&plain[1..]), revision),
        Err(DecodeError::Malformed(_))
    ));
}

/// clickhouse-driver's golden SELECT (revision 54468, settings as strings, compression off).
fn golden_select() -> Query {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/native/golden/query_select_settings.raw"
    ))
    .expect("golden packet");
    let mut r = Reader::new(&raw);
    r.varuint().unwrap();
    Query::decode(&mut r, Revision(54468)).unwrap()
}

#[test]
fn a_restated_query_keeps_the_clients_packet_and_carries_the_new_statement() {
    let original = golden_select();
    let revision = Revision(54468);
    let parameters = [("customer".to_string(), b"'acme'".to_vec())];
    let settings = [
        ("readonly".to_string(), "1".to_string()),
        ("max_threads".to_string(), "2".to_string()),
    ];
    let restated = original
        .restated("SELECT {customer:String}", &parameters, &settings, revision)
        .unwrap();

    let mut bytes = Vec::new();
    restated.encode(revision, &mut bytes);
    let mut r = Reader::new(&bytes);
    assert_eq!(r.varuint().unwrap(), ClientCode::Query as u64);
    let decoded = Query::decode(&mut r, revision).unwrap();
    assert_eq!(r.position(), bytes.len(), "the whole packet is read back");
    assert_eq!(decoded, restated);
    assert_eq!(decoded.query, b"SELECT {customer:String}");
    assert!(decoded.query_id.is_empty());
    assert_eq!(
        (decoded.client_info, decoded.compression),
        (original.client_info.clone(), original.compression)
    );
    let Some([parameter]) = decoded.parameters.as_deref() else {
        panic!("{:?}", decoded.parameters)
    };
    assert_eq!(
        (
            parameter.name.as_slice(),
            parameter.flags,
            parameter.value.as_slice()
        ),
        (&b"customer"[..], Setting::CUSTOM, &b"'acme'"[..])
    );
    let (Settings::Strings(before), Settings::Strings(after)) = (&original.settings, &decoded.settings)
    else {
        panic!("settings as strings at 54468")
    };
    // The client's own max_threads is replaced, not doubled; its other settings stay.
    assert_eq!(after.iter().filter(|s| s.name == b"max_threads").count(), 1);
    for kept in before.iter().filter(|s| s.name != b"max_threads") {
        assert!(after.contains(kept), "{kept:?}");
    }
    for (name, value) in &settings {
        assert!(after.iter().any(|s| s.name == name.as_bytes()
            && s.value == value.as_bytes()
            && s.flags == Setting::IMPORTANT));
    }
}

#[test]
fn an_old_revision_takes_no_parameters_and_only_readonly_in_binary_settings() {
    let original = golden_select();
    let old = Revision(54412);
    let params = [("x".to_string(), b"1".to_vec())];
    assert_eq!(
        original.restated("SELECT 1", &params, &[], old),
        Err(RestateError::NoParameters)
    );
    assert!(original.restated("SELECT 1", &[], &[], old).is_ok());

    let binary = Query {
        settings: Settings::Binary(vec![0]),
        ..original
    };
    let readonly = binary
        .restated("SELECT 1", &[], &[("readonly".into(), "1".into())], old)
        .unwrap();
    let mut expected = Vec::new();
    put_bytes(&mut expected, b"readonly");
    put_varuint(&mut expected, 1);
    expected.push(0);
    assert_eq!(readonly.settings, Settings::Binary(expected));
    let refused = binary
        .restated("SELECT 1", &[], &[("max_threads".into(), "2".into())], old)
        .unwrap_err();
    assert!(
        refused.to_string().contains("SET max_threads = 2 before the ASK"),
        "{refused}"
    );
    assert_eq!(
        binary.restated("SELECT 1", &[], &[("readonly".into(), "yes".into())], old),
        Err(RestateError::NotANumber("yes".into()))
    );
}

#[test]
fn a_newer_clients_setting_in_the_old_binary_form_is_unframeable_not_awaited() {
    // ClickHouse 26.9's client to an 18.16 server: `dialect` is a string the old list does not know; read as a
    // varint it would leave the reader inside "clickhouse" waiting for a 99-byte name that never comes.
    let mut settings = Vec::new();
    put_bytes(&mut settings, b"max_threads");
    put_varuint(&mut settings, 4);
    put_bytes(&mut settings, b"dialect");
    put_bytes(&mut settings, b"clickhouse");
    put_bytes(&mut settings, b"interactive_delay");
    put_varuint(&mut settings, 100_000);
    put_bytes(&mut settings, b"");
    let mut r = Reader::new(&settings);
    let error = super::settings::skip_binary_settings(&mut r).unwrap_err();
    assert!(matches!(error, DecodeError::Unsupported(_)), "{error:?}");
    // The list the old server knows is sized to its end.
    let mut known = Vec::new();
    put_bytes(&mut known, b"max_threads");
    put_varuint(&mut known, 4);
    put_bytes(&mut known, b"totals_mode");
    put_bytes(&mut known, b"after_having_auto");
    put_bytes(&mut known, b"");
    let mut r = Reader::new(&known);
    super::settings::skip_binary_settings(&mut r).unwrap();
    assert_eq!(r.position(), known.len());
}
