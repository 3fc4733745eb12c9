//! The handshake of a native session: the client's Hello, the upstream connection, the server's Hello with
//! the revision rewritten to what all three sides speak, and the addendum.

use super::*;

/// Reads the client's Hello, connects upstream and relays the handshake with the revision rewritten.
/// `Ok(None)` when the connection ended during the handshake in an orderly way (refused login, bad upstream).
pub(super) async fn handshake(
    stream: ClientStream,
    peer: SocketAddr,
    env: Arc<SessionEnv>,
) -> Result<Option<Session>, SessionError> {
    let mut client = Peer::new(stream);
    let hello = loop {
        if client.buf.starts_with(b"GET ")
            || client.buf.starts_with(b"POST")
            || client.buf.starts_with(b"HEAD")
        {
            client.send(HTTP_ON_NATIVE_PORT).await?;
            return Ok(None);
        }
        match ClientHello::decode(&client.buf) {
            Ok((hello, len)) => {
                client.consume(len);
                break hello;
            }
            Err(DecodeError::Incomplete { needed }) => client.needed = needed,
            Err(e) => {
                if let DecodeError::Rejected { code, reason } = &e {
                    // As ClickHouse does: the client learns why before the connection closes.
                    client
                        .send(&encode_exception(*code, &format!("Aurora proxy: {reason}")))
                        .await?;
                }
                return Err(SessionError::ClientProtocol(e));
            }
        }
        if client.read_more().await? == 0 {
            return Ok(None);
        }
    };
    tracing::debug!(%peer, ?hello, "client hello");

    // Proxy users: the login is checked here, before anything goes upstream, and the Hello sent on carries
    // the ClickHouse credentials of the user instead of the client's.
    let mut hello = hello;
    let login = match env
        .gateway
        .login(&String::from_utf8_lossy(&hello.user), &hello.password, peer.ip())
    {
        Ok(login) => login,
        Err(refused) => {
            tracing::info!(%peer, user = %String::from_utf8_lossy(&hello.user), code = refused.code, "login refused");
            telemetry::login_refused(&env.metrics, Protocol::Native, refused.code);
            client
                .send(&encode_exception(refused.code, &refused.message))
                .await?;
            return Ok(None);
        }
    };
    let tenant = login
        .user()
        .and_then(|user| user.tenant_rule(&String::from_utf8_lossy(&hello.database)));
    if let Some(user) = login.user() {
        let (name, password) = user.clickhouse_credentials();
        hello.user = name.as_bytes().to_vec();
        hello.password = password.as_bytes().to_vec();
    }

    // The node: the balance strategy's choice among the listener's healthy nodes; a node that refuses or does
    // not answer the connect is taken out and the next one tried, before the client sees anything.
    let user = String::from_utf8_lossy(&hello.user);
    let mut tried = Vec::new();
    let mut failures = Vec::new();
    let (upstream_stream, node) = loop {
        let Some(node) = env.cluster.choose(env.route, &user, &tried, Protocol::Native) else {
            let message = format!(
                "Aurora proxy: cannot connect to ClickHouse {}",
                if !failures.is_empty() {
                    failures.join("; ")
                } else if let Some(open) = env.cluster.circuits_open(env.route) {
                    open
                } else {
                    "no node serves this endpoint".to_string()
                }
            );
            client
                .send(&encode_exception(codes::NETWORK_ERROR, &message))
                .await?;
            return Ok(None);
        };
        let addr = node.node().config.native.as_str();
        match crate::native::upstream::connect(addr, env.config.connect_timeout).await {
            Ok(stream) => {
                env.cluster.connected(node.node());
                break (stream, node);
            }
            Err(error) => {
                telemetry::upstream_connect_failed(&env.metrics, Protocol::Native, addr, &error);
                env.cluster.connect_failed(node.node(), &error.to_string());
                failures.push(format!("at {addr}: {error}"));
                tried.push(node.node().index);
            }
        }
    };
    let upstream_addr = node.node().config.native.clone();
    let mut upstream = Peer::new(upstream_stream);
    let announced = hello.revision.min(crate::native::protocol::PROXY_MAX_REVISION);
    upstream.send(&hello.encode_with_revision(announced)).await?;

    // Relay until the server's Hello: an Exception (wrong password, unknown user) or the SSH challenge
    // exchange may come first.
    loop {
        while upstream.ready() {
            match frame_handshake_server_packet(&upstream.buf, announced) {
                Ok(HandshakeStep::Hello(server_hello, len)) => {
                    upstream.consume(len);
                    let revision = Revision::negotiate(hello.revision, server_hello.revision);
                    crate::dialect::learn(crate::dialect::Dialect::of_version(
                        server_hello.version_major,
                        server_hello.version_minor,
                    ));
                    client
                        .send(
                            &server_hello.encode_with_revision(
                                server_hello
                                    .revision
                                    .min(crate::native::protocol::PROXY_MAX_REVISION),
                            ),
                        )
                        .await?;
                    tracing::debug!(%peer, server = %server_hello.server_name, %revision, "handshake done");
                    let expect_addendum = revision.has(crate::native::protocol::Feature::Addendum);
                    return Ok(Some(Session {
                        peer,
                        client,
                        upstream,
                        node,
                        ctx: Context {
                            revision,
                            compression: false,
                        },
                        expect_addendum,
                        query: None,
                        ask: None,
                        generated: None,
                        login: login.clone(),
                        admitted: None,
                        pending_audit: None,
                        asker: nlq::Asker {
                            credentials: nlq::clickhouse::Credentials::new(
                                String::from_utf8_lossy(&hello.user),
                                String::from_utf8_lossy(&hello.password),
                            ),
                            database: String::from_utf8_lossy(&hello.database).into_owned(),
                            // One connection is one session: a follow-up refines its previous ASK.
                            session: Some(format!("native/{}", next_session_id())),
                            tenant: tenant.clone(),
                        },
                        client_frame: FrameState::default(),
                        upstream_frame: FrameState::default(),
                        client_memory: Reservation::new(env.framing_budget.clone()),
                        env,
                    }));
                }
                Ok(HandshakeStep::Relay(len)) => forward(&mut upstream, &mut client, len).await?,
                Ok(HandshakeStep::Refused(len)) => {
                    forward(&mut upstream, &mut client, len).await?;
                    return Ok(None);
                }
                Err(DecodeError::Incomplete { needed }) => upstream.needed = needed,
                Err(e) => return Err(SessionError::UpstreamProtocol(e)),
            }
        }
        while client.ready() {
            match frame_handshake_client_packet(&client.buf) {
                Ok(len) => forward(&mut client, &mut upstream, len).await?,
                Err(DecodeError::Incomplete { needed }) => client.needed = needed,
                Err(e) => return Err(SessionError::ClientProtocol(e)),
            }
        }
        tokio::select! {
            n = upstream.read_more() => if n? == 0 {
                let message = format!("Aurora proxy: ClickHouse at {upstream_addr} closed the connection during the handshake");
                client.send(&encode_exception(codes::NETWORK_ERROR, &message)).await?;
                return Ok(None);
            },
            n = client.read_more() => if n? == 0 { return Ok(None) },
        }
    }
}

enum HandshakeStep {
    Hello(ServerHello, usize),
    /// A packet to pass to the client before the Hello (SSH challenge).
    Relay(usize),
    /// An exception: the server refused the client.
    Refused(usize),
}

fn frame_handshake_server_packet(buf: &[u8], announced: Revision) -> Result<HandshakeStep, DecodeError> {
    let mut r = Reader::new(buf);
    match ServerCode::from_u64(r.varuint()?) {
        Some(ServerCode::Hello) => {
            let (hello, len) = ServerHello::decode(buf, announced)?;
            Ok(HandshakeStep::Hello(hello, len))
        }
        Some(ServerCode::Exception) => {
            crate::native::protocol::exception::decode_exception(&mut r)?;
            Ok(HandshakeStep::Refused(r.position()))
        }
        Some(ServerCode::SshChallenge) => {
            r.bytes()?;
            Ok(HandshakeStep::Relay(r.position()))
        }
        _ => Err(DecodeError::malformed(
            "unexpected packet from the server during the handshake",
        )),
    }
}

/// Client packets allowed between Hello and the server's Hello: the SSH challenge exchange.
fn frame_handshake_client_packet(buf: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader::new(buf);
    match ClientCode::from_u64(r.varuint()?) {
        Some(ClientCode::SshChallengeRequest) => Ok(r.position()),
        Some(ClientCode::SshChallengeResponse) => {
            r.bytes_at_most(
                crate::native::protocol::hello::MAX_HELLO_STRING,
                "SSH challenge response",
            )?;
            Ok(r.position())
        }
        _ => Err(DecodeError::malformed(
            "unexpected packet from the client during the handshake",
        )),
    }
}
