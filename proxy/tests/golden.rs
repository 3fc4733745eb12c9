//! Golden client packets captured from a real driver (`fixtures/native/golden`, see its README): every file is
//! decoded, checked against the capture's own decoding in `manifest.json`, re-encoded or framed byte for byte,
//! and every strict prefix of it must read as "need more bytes".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aurora_proxy::native::protocol::block::FrameState;
use aurora_proxy::native::protocol::client_packet::{frame_client_packet, ClientPacket};
use aurora_proxy::native::protocol::hello::{addendum_len, ClientHello};
use aurora_proxy::native::protocol::query::{decode_query, Interface, Query, QueryKind, Setting, Settings};
use aurora_proxy::native::protocol::wire::Reader;
use aurora_proxy::native::protocol::{Context, DecodeError, Revision};
use serde_json::{json, Value};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/native/golden")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(golden_dir().join("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

/// Every `<name>.raw` in the golden folder, by name.
fn golden_packets() -> BTreeMap<String, Vec<u8>> {
    let mut packets = BTreeMap::new();
    for entry in std::fs::read_dir(golden_dir()).expect("list the golden folder") {
        let path = entry.expect("golden folder entry").path();
        if path.extension().is_some_and(|e| e == "raw") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            packets.insert(name, std::fs::read(&path).expect("read a .raw file"));
        }
    }
    assert!(
        !packets.is_empty(),
        "no golden packets in {}",
        golden_dir().display()
    );
    packets
}

/// Parses the capture tool's dump: `%08x` offset, two spaces, bytes as `%02x` separated by spaces (padded to 47
/// columns), two spaces, then the printable bytes between `|`. Checks offsets and the text column as well.
fn parse_hex_dump(name: &str, text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("{name}.hex line {}: {what}: {line:?}", n + 1);
        assert!(
            line.len() >= 61 && line.is_char_boundary(57),
            "{}",
            bad("too short")
        );
        let offset = usize::from_str_radix(&line[..8], 16).unwrap_or_else(|_| panic!("{}", bad("offset")));
        assert_eq!(
            offset,
            bytes.len(),
            "{}",
            bad("offset does not follow the previous line")
        );
        assert_eq!(&line[8..10], "  ", "{}", bad("separator after the offset"));
        let chunk: Vec<u8> = line[10..57]
            .split_whitespace()
            .map(|h| {
                assert_eq!(h.len(), 2, "{}", bad("byte"));
                u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("{}", bad("byte")))
            })
            .collect();
        assert!(
            !chunk.is_empty() && chunk.len() <= 16,
            "{}",
            bad("bytes per line")
        );
        assert!(
            line[57..].starts_with("  |") && line.ends_with('|'),
            "{}",
            bad("text column")
        );
        let printable: String = chunk
            .iter()
            .map(|&b| if (32..127).contains(&b) { b as char } else { '.' })
            .collect();
        assert_eq!(&line[60..line.len() - 1], printable, "{}", bad("text column"));
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// The negotiated revision of the capture (54468).
fn capture_revision(manifest: &Value) -> Revision {
    let client = manifest["client_revision"].as_u64().expect("client_revision");
    let server = manifest["server_revision_offered"]
        .as_u64()
        .expect("server_revision_offered");
    let revision = Revision::negotiate(Revision(client), Revision(server));
    assert_eq!(revision, Revision(54468));
    revision
}

/// Packets after a Query that asked for compression: the capture names them after the method.
fn is_compressed(name: &str) -> bool {
    name.ends_with("_lz4") || name.ends_with("_zstd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("golden strings are UTF-8")
}

fn setting_list_json(list: &[Setting]) -> Value {
    list.iter()
        .map(|s| json!({ "name": text(&s.name), "flags": s.flags, "value": text(&s.value) }))
        .collect()
}

/// A decoded Query in the manifest's shape (what `capture.py` writes), to compare field by field.
fn query_json(query: &Query) -> Value {
    let info = query.client_info.as_ref().expect("54468 carries ClientInfo");
    assert_eq!(info.kind, QueryKind::Initial);
    let Interface::Tcp(tcp) = &info.interface else {
        panic!("clickhouse-driver speaks TCP, got {:?}", info.interface);
    };
    let mut client_info = json!({
        "query_kind": info.kind as u8,
        "initial_user": text(&info.initial_user),
        "initial_query_id": text(&info.initial_query_id),
        "initial_address": text(&info.initial_address),
        "initial_query_start_time_microseconds": info.initial_query_start_time_us,
        "interface": 1,
        "os_user": text(&tcp.os_user),
        "client_hostname": text(&tcp.client_hostname),
        "client_name": text(&tcp.client_name),
        "client_version_major": tcp.version_major,
        "client_version_minor": tcp.version_minor,
        "client_revision": tcp.revision,
        "quota_key": text(&info.quota_key),
        "distributed_depth": info.distributed_depth,
        "client_version_patch": tcp.version_patch,
        "has_opentelemetry": u8::from(info.trace_context.is_some()),
        "collaborate_with_initiator": info.parallel_replicas.collaborate_with_initiator,
        "count_participating_replicas": info.parallel_replicas.count_participating_replicas,
        "number_of_current_replica": info.parallel_replicas.number_of_current_replica,
    });
    if let Some(trace) = &info.trace_context {
        let hex: String = trace.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        client_info["trace_id"] = json!(hex);
        client_info["span_id"] = json!(trace.span_id);
        client_info["tracestate"] = json!(text(&trace.tracestate));
        client_info["trace_flags"] = json!(trace.trace_flags);
    }
    let Settings::Strings(settings) = &query.settings else {
        panic!("54468 sends settings as strings");
    };
    json!({
        "query_id": text(&query.query_id),
        "client_info": client_info,
        "settings": setting_list_json(settings),
        "interserver_secret": text(query.interserver_secret.as_deref().expect("54468 carries the secret")),
        "stage": query.stage,
        "compression": u8::from(query.compression),
        "query": text(&query.query),
        "parameters": setting_list_json(query.parameters.as_deref().expect("54468 carries parameters")),
    })
}

/// The manifest entry without the two keys that describe the capture rather than the packet.
fn packet_fields(entry: &Value) -> Value {
    let mut fields = entry.clone();
    let map = fields.as_object_mut().unwrap();
    map.remove("bytes");
    map.remove("packet");
    fields
}

fn check_hello(name: &str, raw: &[u8], entry: &Value, revision: Revision) {
    let (hello, len) = ClientHello::decode(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(len, raw.len(), "{name}: Hello length");
    assert_eq!(hello.client_name, entry["client_name"].as_str().unwrap());
    assert_eq!(Some(hello.version_major), entry["version_major"].as_u64());
    assert_eq!(Some(hello.version_minor), entry["version_minor"].as_u64());
    assert_eq!(Some(hello.revision.0), entry["revision"].as_u64());
    assert_eq!(text(&hello.database), entry["database"].as_str().unwrap());
    assert_eq!(text(&hello.user), entry["user"].as_str().unwrap());
    assert_eq!(text(&hello.password), entry["password"].as_str().unwrap());
    assert!(hello.interserver_tail.is_empty());
    assert_eq!(
        hello.encode_with_revision(revision),
        raw,
        "{name}: re-encoded Hello"
    );
    for cut in 0..raw.len() {
        assert!(
            matches!(
                ClientHello::decode(&raw[..cut]),
                Err(DecodeError::Incomplete { .. })
            ),
            "{name}: Hello prefix of {cut} bytes"
        );
    }
}

fn check_addendum(name: &str, raw: &[u8], entry: &Value, revision: Revision) {
    assert_eq!(
        addendum_len(raw, revision),
        Ok(raw.len()),
        "{name}: addendum length"
    );
    let quota_key = Reader::new(raw).bytes().unwrap();
    assert_eq!(text(quota_key), entry["quota_key"].as_str().unwrap());
    for cut in 0..raw.len() {
        assert!(
            matches!(
                addendum_len(&raw[..cut], revision),
                Err(DecodeError::Incomplete { .. })
            ),
            "{name}: addendum prefix of {cut} bytes"
        );
    }
}

fn check_query(name: &str, raw: &[u8], entry: &Value, ctx: &Context) {
    assert_eq!(raw[0], 1, "{name}: Query packet code");
    let body = &raw[1..];
    let mut r = Reader::new(body);
    let query = Query::decode(&mut r, ctx.revision).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.position(), body.len(), "{name}: Query::decode leaves bytes");
    let mut encoded = Vec::new();
    query.encode(ctx.revision, &mut encoded);
    assert_eq!(encoded, raw, "{name}: re-encoded Query");
    assert_eq!(query_json(&query), packet_fields(entry), "{name}: decoded fields");
    assert_eq!(query.compression, ctx.compression, "{name}: compression flag");
    assert_eq!(Some(query.stage), entry["stage"].as_u64());

    let mut r = Reader::new(body);
    let fast = decode_query(&mut r, ctx.revision).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.position(), body.len(), "{name}: decode_query leaves bytes");
    assert_eq!(fast.query_id, &query.query_id[..]);
    assert_eq!(fast.query, &query.query[..]);
    assert_eq!((fast.stage, fast.compression), (query.stage, query.compression));
    for cut in 0..body.len() {
        assert!(
            matches!(
                Query::decode(&mut Reader::new(&body[..cut]), ctx.revision),
                Err(DecodeError::Incomplete { .. })
            ),
            "{name}: Query::decode on a prefix of {cut} bytes"
        );
    }

    let packet = frame(name, raw, ctx);
    assert!(
        matches!(&packet, ClientPacket::Query(q) if *q == fast),
        "{name}: framed as {packet:?}"
    );
}

fn check_data(name: &str, raw: &[u8], entry: &Value, ctx: &Context) {
    let mut r = Reader::new(raw);
    assert_eq!(r.varuint(), Ok(2), "{name}: Data packet code");
    let table = r.bytes().unwrap();
    assert_eq!(
        text(table),
        entry["table_name"].as_str().unwrap(),
        "{name}: table name"
    );
    let frame_info = &entry["compression"];
    assert_eq!(
        ctx.compression,
        frame_info.is_object(),
        "{name}: manifest compression vs file name"
    );
    if ctx.compression {
        // Checksum (16 bytes), then the header the manifest decoded.
        let header = &r.remaining()[16..25];
        let method = format!("{:#04x}", header[0]);
        assert_eq!(method, frame_info["method"].as_str().unwrap(), "{name}: method");
        let size = |at: usize| u64::from(u32::from_le_bytes(header[at..at + 4].try_into().unwrap()));
        assert_eq!(
            Some(size(1)),
            frame_info["compressed_size"].as_u64(),
            "{name}: compressed size"
        );
        assert_eq!(
            Some(size(5)),
            frame_info["decompressed_size"].as_u64(),
            "{name}: decompressed size"
        );
    }
    let ClientPacket::Data(shape) = frame(name, raw, ctx) else {
        panic!("{name}: not framed as Data");
    };
    let columns = entry["columns"].as_array().unwrap().len() as u64;
    assert_eq!(shape.columns, columns, "{name}: columns");
    assert_eq!(Some(shape.rows), entry["rows"].as_u64(), "{name}: rows");
}

/// Frames `raw` with the client-packet framer, which must take exactly all of it, and checks that every strict
/// prefix is incomplete: from scratch, and as a connection sees it, the bytes arriving one at a time with the
/// framer's state carried between attempts.
fn frame<'a>(name: &str, raw: &'a [u8], ctx: &Context) -> ClientPacket<'a> {
    let mut carried = FrameState::default();
    for cut in 0..raw.len() {
        let fresh = frame_client_packet(&raw[..cut], ctx, &mut FrameState::default());
        assert!(
            matches!(fresh, Err(DecodeError::Incomplete { .. })),
            "{name}: framer on a prefix of {cut} bytes gave {fresh:?}"
        );
        let resumed = frame_client_packet(&raw[..cut], ctx, &mut carried);
        assert!(
            matches!(resumed, Err(DecodeError::Incomplete { .. })),
            "{name}: resumed framer on a prefix of {cut} bytes gave {resumed:?}"
        );
    }
    let (resumed, resumed_len) =
        frame_client_packet(raw, ctx, &mut carried).unwrap_or_else(|e| panic!("{name}: resumed: {e}"));
    let (packet, len) =
        frame_client_packet(raw, ctx, &mut FrameState::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(len, raw.len(), "{name}: framed length");
    assert_eq!(
        (&resumed, resumed_len),
        (&packet, len),
        "{name}: resumed framing differs"
    );
    packet
}

#[test]
fn hex_dumps_match_the_raw_bytes() {
    for (name, raw) in golden_packets() {
        let dump = std::fs::read_to_string(golden_dir().join(format!("{name}.hex")))
            .unwrap_or_else(|e| panic!("{name}.hex: {e}"));
        assert_eq!(
            parse_hex_dump(&name, &dump),
            raw,
            "{name}.hex differs from {name}.raw"
        );
    }
}

#[test]
fn manifest_lists_exactly_the_golden_files() {
    let manifest = manifest();
    let listed: Vec<&String> = manifest["packets"].as_object().expect("packets").keys().collect();
    let files = golden_packets();
    let on_disk: Vec<&String> = files.keys().collect();
    assert_eq!(listed, on_disk);
    for (name, raw) in &files {
        let bytes = manifest["packets"][name]["bytes"].as_u64();
        assert_eq!(bytes, Some(raw.len() as u64), "{name}: size in the manifest");
    }
}

#[test]
fn every_golden_packet_decodes_as_the_capture_did() {
    let manifest = manifest();
    let revision = capture_revision(&manifest);
    for (name, raw) in golden_packets() {
        let entry = &manifest["packets"][&name];
        let kind = entry["packet"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: not in manifest.json"));
        let compression = is_compressed(&name);
        let ctx = Context {
            revision,
            compression,
        };
        match kind {
            "Hello" => check_hello(&name, &raw, entry, revision),
            "Addendum" => check_addendum(&name, &raw, entry, revision),
            "Query" => check_query(&name, &raw, entry, &ctx),
            "Data" => check_data(&name, &raw, entry, &ctx),
            "Ping" => assert_eq!(frame(&name, &raw, &ctx), ClientPacket::Ping, "{name}"),
            "Cancel" => assert_eq!(frame(&name, &raw, &ctx), ClientPacket::Cancel, "{name}"),
            other => panic!("{name}: no check for a {other} packet"),
        }
    }
}
