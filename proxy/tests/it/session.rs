//! The native session against a scripted upstream.

use std::time::Duration;

use aurora_proxy::native::protocol::exception::decode_exception;
use aurora_proxy::native::protocol::query::Query;
use aurora_proxy::native::protocol::wire::Reader;
use aurora_proxy::native::protocol::Revision;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{connect, golden, read_for, Proxy, UpstreamConn, WAIT};

const NEGOTIATED: Revision = Revision(54468);
const END_OF_STREAM: u8 = 5;
const CANCEL: u8 = 3;

async fn upstream() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind upstream")
}

/// The golden SELECT with another query text.
fn query_with_text(text: &str) -> Vec<u8> {
    let packet = golden("query_select_settings");
    let mut r = Reader::new(&packet);
    r.varuint().expect("packet code");
    let mut query = Query::decode(&mut r, NEGOTIATED).expect("golden query decodes");
    query.query = text.as_bytes().to_vec();
    let mut out = Vec::new();
    query.encode(NEGOTIATED, &mut out);
    out
}

/// The golden SELECT (after the addendum, which clickhouse-driver sends with its next packet) from `client`,
/// checked to reach the upstream byte for byte.
async fn select_reaches_upstream(client: &mut TcpStream, up: &mut UpstreamConn) {
    let mut sent = golden("addendum");
    sent.extend(golden("query_select_settings"));
    sent.extend(golden("data_end_of_external_tables"));
    client.write_all(&sent).await.unwrap();
    assert_eq!(up.read_exact(sent.len()).await, sent);
}

#[tokio::test]
async fn sql_travels_byte_for_byte_both_ways() {
    let listener = upstream().await;
    let proxy = Proxy::start(listener.local_addr().unwrap()).await;
    let (mut client, mut up) = connect(&proxy, &listener).await;

    select_reaches_upstream(&mut client, &mut up).await;

    up.send(&[END_OF_STREAM]).await;
    assert_eq!(
        read_for(&mut client, Duration::from_millis(300)).await,
        [END_OF_STREAM]
    );
}

#[tokio::test]
async fn an_ask_is_answered_by_the_proxy_and_never_reaches_clickhouse() {
    let listener = upstream().await;
    let proxy = Proxy::start(listener.local_addr().unwrap()).await;
    let (mut client, mut up) = connect(&proxy, &listener).await;

    let mut sent = golden("addendum");
    sent.extend(query_with_text("ASK 'how many events?'"));
    sent.extend(golden("data_end_of_external_tables"));
    client.write_all(&sent).await.unwrap();

    // No HTTP upstream answers the catalog read: the proxy says so, as a ClickHouse exception.
    let answer = read_for(&mut client, WAIT).await;
    assert_eq!(answer.first(), Some(&2), "an Exception packet: {answer:?}");
    let mut r = Reader::new(&answer[1..]);
    let exception = decode_exception(&mut r).expect("a whole exception");
    assert_eq!(exception.code, 210, "{}", exception.message);
    assert!(
        exception.message.contains("cannot read the catalog"),
        "{}",
        exception.message
    );
    // Only the addendum went upstream: the ASK's Query and its data block were kept back.
    assert_eq!(up.read_for(Duration::from_millis(300)).await, golden("addendum"));

    // The connection goes on: the next SQL is relayed as usual.
    let mut next = golden("query_select_settings");
    next.extend(golden("data_end_of_external_tables"));
    client.write_all(&next).await.unwrap();
    assert_eq!(up.read_exact(next.len()).await, next);
}

#[tokio::test]
async fn a_client_gone_mid_query_makes_the_proxy_cancel_it_upstream() {
    let listener = upstream().await;
    let proxy = Proxy::start(listener.local_addr().unwrap()).await;
    let (mut client, mut up) = connect(&proxy, &listener).await;
    select_reaches_upstream(&mut client, &mut up).await;

    drop(client);
    assert_eq!(
        up.read_for(WAIT).await,
        [CANCEL],
        "a Cancel, then the proxy closes the upstream connection"
    );
}

#[tokio::test]
async fn a_malformed_packet_closes_that_connection_only() {
    let listener = upstream().await;
    let proxy = Proxy::start(listener.local_addr().unwrap()).await;
    let (mut client, mut up) = connect(&proxy, &listener).await;
    // Packet type 1 (Query) whose query id claims 2^62 bytes: refused from the length, nothing buffered.
    let mut bad = golden("addendum");
    bad.extend([1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    client.write_all(&bad).await.unwrap();
    let answer = read_for(&mut client, WAIT).await;
    assert!(
        answer.is_empty() || answer[0] == 2,
        "closed, or an Exception first: {answer:?}"
    );
    assert!(
        !up.read_for(WAIT).await.contains(&1),
        "the broken Query never went upstream"
    );

    // The listener still serves: a second client completes its handshake and a query.
    let (mut second, mut up2) = connect(&proxy, &listener).await;
    select_reaches_upstream(&mut second, &mut up2).await;
}
