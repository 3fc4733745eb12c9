//! The client against a server on `127.0.0.1:0` that is fed raw bytes: what goes on the wire, and what the
//! client makes of answers that are too large, late, refused, cut off or not HTTP at all.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;

/// What the server does once it has read a request.
#[derive(Clone)]
enum Then {
    /// Writes these bytes and closes.
    Answer(Vec<u8>),
    /// Keeps the connection open without a word.
    Hang,
}

/// A server that reads each request (head and `Content-Length` body), hands its bytes to the test and does
/// `then`; its base URL.
async fn serve(then: Then) -> (String, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let then = then.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let request = read_request(&mut socket).await;
                let _ = seen.send(request);
                match then {
                    Then::Answer(bytes) => {
                        let _ = socket.write_all(&bytes).await;
                        let _ = socket.shutdown().await;
                    }
                    Then::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (url, requests)
}

async fn read_request(socket: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                return bytes;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return bytes,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

fn answer(status: &str, headers: &[&str], body: &[u8]) -> Then {
    let mut bytes = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(format!("{header}\r\n").as_bytes());
    }
    bytes.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    Then::Answer(bytes)
}

fn client(url: &str, options: Options) -> Client {
    Client::new(url, options).unwrap()
}

#[tokio::test]
async fn a_request_carries_its_path_parameters_credentials_and_body() {
    let (url, mut requests) = serve(answer("200 OK", &[], b"1\n")).await;
    let ch = client(&format!("{url}/base/"), Options::default());
    let response = ch
        .post("/")
        .query("query", "INSERT INTO t FORMAT RowBinary")
        .query_encoded("query_id=q-1")
        .auth(&Auth::Basic {
            user: "alice".into(),
            password: "pw".into(),
        })
        .body(&b"rows"[..])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(
        (response.status, &response.body[..]),
        (StatusCode::OK, &b"1\n"[..])
    );
    let request = String::from_utf8(requests.recv().await.unwrap()).unwrap();
    assert!(
        request.starts_with(
            "POST /base/?query=INSERT%20INTO%20t%20FORMAT%20RowBinary&query_id=q-1 HTTP/1.1\r\n"
        ),
        "{request}"
    );
    let host = url.strip_prefix("http://").unwrap();
    for line in [
        format!("host: {host}\r\n"),
        "authorization: Basic YWxpY2U6cHc=\r\n".to_string(), // alice:pw
        "content-length: 4\r\n".to_string(),
    ] {
        assert!(request.contains(&line), "{line:?} not in {request}");
    }
    assert!(request.ends_with("\r\n\r\nrows"), "{request}");

    // ClickHouse's own headers; an empty POST still says its length.
    ch.post("")
        .auth(&Auth::ClickHouse {
            user: "bob".into(),
            key: Some("secret".into()),
        })
        .send()
        .await
        .unwrap();
    let request = String::from_utf8(requests.recv().await.unwrap()).unwrap();
    assert!(request.starts_with("POST /base HTTP/1.1\r\n"), "{request}");
    for line in [
        "x-clickhouse-user: bob\r\n",
        "x-clickhouse-key: secret\r\n",
        "content-length: 0\r\n",
    ] {
        assert!(request.contains(line), "{line:?} not in {request}");
    }
    assert!(!request.contains("authorization"), "{request}");
}

#[tokio::test]
async fn credentials_never_print_and_headers_that_cannot_carry_them_are_refused() {
    let printed = format!(
        "{:?} {:?}",
        Auth::Basic {
            user: "alice".into(),
            password: "alice-secret".into()
        },
        Auth::Bearer("token-secret".into())
    );
    assert!(
        printed.contains("alice") && !printed.contains("secret"),
        "{printed}"
    );
    let (url, _requests) = serve(answer("200 OK", &[], b"")).await;
    let error = client(&url, Options::default())
        .get("/")
        .auth(&Auth::Bearer("line\nbreak".into()))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Request(_)), "{error:?}");
}

#[tokio::test]
async fn an_answer_larger_than_the_bound_is_refused() {
    let options = Options {
        max_answer: 1024,
        ..Options::default()
    };
    // Said up front.
    let (url, _r) = serve(answer("200 OK", &[], &[b'x'; 1025])).await;
    let error = client(&url, options.clone()).get("/").send().await.unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: 1024 }), "{error:?}");
    // Found out as the chunks arrive.
    let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (url, _r) = serve(Then::Answer(chunked)).await;
    let error = client(&url, options.clone()).get("/").send().await.unwrap_err();
    assert!(matches!(error, Error::TooLarge { limit: 1024 }), "{error:?}");
    assert_eq!(error.to_string(), "the answer is larger than 1024 bytes");
    // Exactly the bound is read.
    let (url, _r) = serve(answer("200 OK", &[], &[b'z'; 1024])).await;
    let response = client(&url, options).get("/").send().await.unwrap();
    assert_eq!(response.body.len(), 1024);
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out() {
    let (url, _r) = serve(Then::Hang).await;
    let options = Options {
        request_timeout: Some(Duration::from_millis(200)),
        ..Options::default()
    };
    let started = Instant::now();
    let error = client(&url, options)
        .post("/")
        .body("SELECT 1")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Timeout { after, .. } if after == Duration::from_millis(200)),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn clickhouse_refusals_are_read_as_exceptions() {
    let modern = "Code: 60. DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE) (version 23.8.1.1)\n";
    let (url, _r) = serve(answer(
        "404 Not Found",
        &["X-ClickHouse-Exception-Code: 60"],
        modern.as_bytes(),
    ))
    .await;
    let error = client(&url, Options::default())
        .post("/")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    let Error::Exception(exception) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        exception,
        &Exception {
            status: 404,
            code: Some(crate::codes::UNKNOWN_TABLE),
            name: Some("UNKNOWN_TABLE".into()),
            message: "Table x doesn't exist".into(),
            text: modern.trim().into(),
        }
    );
    assert_eq!(error.to_string(), modern.trim());

    // 18.16 sends no header: the code is read from the text.
    let legacy = "Code: 47, e.displayText() = DB::Exception: Missing columns: 'z', e.what() = DB::Exception";
    let (url, _r) = serve(answer("500 Internal Server Error", &[], legacy.as_bytes())).await;
    let response = client(&url, Options::default()).post("/").send().await.unwrap();
    let Err(Error::Exception(exception)) = response.error_for_status() else {
        panic!("a 500 is an exception");
    };
    assert_eq!(
        (exception.status, exception.code, exception.message.as_str()),
        (500, Some(47), "Missing columns: 'z'")
    );

    // Not ClickHouse's: no code, the text is the message.
    let (url, _r) = serve(answer("502 Bad Gateway", &[], b"Bad Gateway")).await;
    let response = client(&url, Options::default()).get("/").send().await.unwrap();
    let Err(Error::Exception(exception)) = response.error_for_status() else {
        panic!("a 502 is an exception");
    };
    assert_eq!(
        (exception.code, exception.name, exception.message.as_str()),
        (None, None, "Bad Gateway")
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = client(&format!("http://{addr}"), Options::default())
        .get("/")
        .send()
        .await
        .unwrap_err();
    match &error {
        Error::Connect { addr: said, error } => {
            assert_eq!(said, &addr.to_string());
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot connect to {addr}: ")),
        "{error}"
    );
}

#[tokio::test]
async fn an_exchange_cut_short_says_where() {
    // Closed before any answer.
    let (url, _r) = serve(Then::Answer(Vec::new())).await;
    let error = client(&url, Options::default())
        .get("/")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Send { .. }), "{error:?}");
    // The body breaks off after 10 of its 100 bytes.
    let (url, _r) = serve(Then::Answer(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789".to_vec(),
    ))
    .await;
    let error = client(&url, Options::default())
        .get("/")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Body { .. }), "{error:?}");
}

#[tokio::test]
async fn https_to_a_server_that_speaks_no_tls_fails_in_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 512];
        let _ = socket.read(&mut hello).await;
        let _ = socket
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let options = Options {
        roots: Roots::PemFiles(Vec::new()),
        ..Options::default()
    };
    let error = client(&format!("https://{addr}"), options)
        .get("/")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Handshake { .. }), "{error:?}");
}

#[test]
fn a_ca_file_that_cannot_be_read_is_refused_when_the_client_is_built() {
    let options = Options {
        roots: Roots::PemFiles(vec!["/nonexistent/aurora-ca.pem".into()]),
        ..Options::default()
    };
    let error = Client::new("https://ch:8443", options.clone()).unwrap_err();
    assert!(
        matches!(&error, Error::Tls(text) if text.starts_with("/nonexistent/aurora-ca.pem: ")),
        "{error:?}"
    );
    // Plain HTTP needs no CA.
    assert!(Client::new("http://ch:8123", options).is_ok());
}

#[test]
fn parameters_are_percent_encoded() {
    assert_eq!(percent_encode("SELECT 1+1 ='a'"), "SELECT%201%2B1%20%3D%27a%27");
    assert_eq!(percent_encode("é~_.-"), "%C3%A9~_.-");
}
