//! The handshake: client Hello, server Hello and the client's addendum.
//!
//! The proxy rewrites exactly one field of each Hello, the revision, so that both peers settle on
//! [`Revision::negotiate`]. Every other byte is kept: fields after the revision depend only on the negotiated
//! revision, which is the same on both sides of the proxy.

use super::error::DecodeError;
use super::packets::{ClientCode, ServerCode};
use super::revision::{Feature, Revision};
use super::wire::{put_bytes, put_varuint, Reader};

/// User name that marks a ClickHouse server talking to another with the inter-server secret.
const INTERSERVER_USER: &[u8] = b" INTERSERVER SECRET ";

/// Longest string of a client's Hello (client name, database, user, password, inter-server fields). The
/// Hello arrives before any authentication, so nothing in it may make the proxy buffer much: ClickHouse refuses
/// such names at once too. A JWT or a long password fits many times over.
pub const MAX_HELLO_STRING: u64 = 64 << 10;

/// A client's Hello.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub client_name: String,
    pub version_major: u64,
    pub version_minor: u64,
    pub revision: Revision,
    pub database: Vec<u8>,
    pub user: Vec<u8>,
    /// In the clear on the wire: never log it (the `Debug` impl hides it).
    pub password: Vec<u8>,
    /// Inter-server cluster and salt strings, kept as raw bytes.
    pub interserver_tail: Vec<u8>,
}

impl std::fmt::Debug for ClientHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHello")
            .field("client_name", &self.client_name)
            .field(
                "version",
                &format_args!("{}.{}", self.version_major, self.version_minor),
            )
            .field("revision", &self.revision)
            .field("database", &String::from_utf8_lossy(&self.database))
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"<hidden>")
            .finish()
    }
}

impl ClientHello {
    /// Decodes a whole Hello packet (including its code); returns it and its length.
    pub fn decode(buf: &[u8]) -> Result<(ClientHello, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let code = r.varuint()?;
        if code != ClientCode::Hello as u64 {
            return Err(DecodeError::malformed(format!(
                "expected a client Hello, got packet {code}"
            )));
        }
        let name_start = r.position();
        let client_name = std::str::from_utf8(r.bytes_at_most(MAX_HELLO_STRING, "client name")?)
            .map_err(|_| DecodeError::malformed(format!("string at byte {name_start} is not UTF-8")))?
            .to_string();
        let version_major = r.varuint()?;
        let version_minor = r.varuint()?;
        let revision = Revision(r.varuint()?);
        let database = r.bytes_at_most(MAX_HELLO_STRING, "database name")?.to_vec();
        let user = r.bytes_at_most(MAX_HELLO_STRING, "user name")?.to_vec();
        let password = r.bytes_at_most(MAX_HELLO_STRING, "password")?.to_vec();
        let mut interserver_tail = Vec::new();
        if user == INTERSERVER_USER && password.is_empty() {
            let start = r.position();
            r.bytes_at_most(MAX_HELLO_STRING, "cluster name")?;
            r.bytes_at_most(MAX_HELLO_STRING, "inter-server salt")?;
            interserver_tail = r.consumed_since(start).to_vec();
        }
        let hello = ClientHello {
            client_name,
            version_major,
            version_minor,
            revision,
            database,
            user,
            password,
            interserver_tail,
        };
        Ok((hello, r.position()))
    }

    /// Encodes this Hello announcing `revision` instead of the client's own.
    pub fn encode_with_revision(&self, revision: Revision) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.password.len());
        put_varuint(&mut out, ClientCode::Hello as u64);
        put_bytes(&mut out, self.client_name.as_bytes());
        put_varuint(&mut out, self.version_major);
        put_varuint(&mut out, self.version_minor);
        put_varuint(&mut out, revision.0);
        put_bytes(&mut out, &self.database);
        put_bytes(&mut out, &self.user);
        put_bytes(&mut out, &self.password);
        out.extend_from_slice(&self.interserver_tail);
        out
    }
}

/// A server's Hello, split where the revision sits so it can be re-announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    pub server_name: String,
    pub version_major: u64,
    pub version_minor: u64,
    pub revision: Revision,
    pub timezone: Option<String>,
    pub display_name: Option<String>,
    pub version_patch: Option<u64>,
    /// Bytes from the packet start up to the revision field.
    head: Vec<u8>,
    /// Bytes after the revision field, exactly as the server sent them.
    tail: Vec<u8>,
}

impl ServerHello {
    /// Decodes a server Hello written for a client that announced `announced` (fields are gated by
    /// `min(announced, server revision)`). Returns it and its length.
    pub fn decode(buf: &[u8], announced: Revision) -> Result<(ServerHello, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let code = r.varuint()?;
        if code != ServerCode::Hello as u64 {
            return Err(DecodeError::malformed(format!(
                "expected a server Hello, got packet {code}"
            )));
        }
        let server_name = r.string()?.to_string();
        let version_major = r.varuint()?;
        let version_minor = r.varuint()?;
        let head_len = r.position();
        let revision = Revision(r.varuint()?);
        let tail_start = r.position();
        let gate = announced.min(revision);
        let timezone = gate
            .has(Feature::ServerTimezone)
            .then(|| r.string().map(str::to_string))
            .transpose()?;
        let display_name = gate
            .has(Feature::ServerDisplayName)
            .then(|| r.string().map(str::to_string))
            .transpose()?;
        let version_patch = gate.has(Feature::VersionPatch).then(|| r.varuint()).transpose()?;
        if gate.has(Feature::PasswordComplexityRules) {
            let rules = r.varuint()?;
            for _ in 0..rules {
                r.bytes()?;
                r.bytes()?;
            }
        }
        if gate.has(Feature::InterserverSecretV2) {
            r.u64_le()?; // nonce
        }
        let hello = ServerHello {
            server_name,
            version_major,
            version_minor,
            revision,
            timezone,
            display_name,
            version_patch,
            head: buf[..head_len].to_vec(),
            tail: buf[tail_start..r.position()].to_vec(),
        };
        Ok((hello, r.position()))
    }

    /// Encodes this Hello announcing `revision` instead of the server's own.
    pub fn encode_with_revision(&self, revision: Revision) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 4);
        out.extend_from_slice(&self.head);
        put_varuint(&mut out, revision.0);
        out.extend_from_slice(&self.tail);
        out
    }
}

/// Length of the addendum a client sends after the handshake at `revision` (0 when there is none).
pub fn addendum_len(buf: &[u8], revision: Revision) -> Result<usize, DecodeError> {
    if !revision.has(Feature::Addendum) {
        return Ok(0);
    }
    let mut r = Reader::new(buf);
    r.bytes_at_most(MAX_HELLO_STRING, "quota key")?;
    Ok(r.position())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_round_trips_and_hides_the_password() {
        let hello = ClientHello {
            client_name: "ClickHouse client".into(),
            version_major: 24,
            version_minor: 3,
            revision: Revision(54468),
            database: b"default".to_vec(),
            user: b"alice".to_vec(),
            password: b"alice-secret".to_vec(),
            interserver_tail: vec![],
        };
        let bytes = hello.encode_with_revision(hello.revision);
        let (decoded, len) = ClientHello::decode(&bytes).unwrap();
        assert_eq!(decoded, hello);
        assert_eq!(len, bytes.len());
        assert!(!format!("{decoded:?}").contains("alice-secret"));
        for cut in 0..bytes.len() {
            assert!(matches!(
                ClientHello::decode(&bytes[..cut]),
                Err(DecodeError::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn hello_strings_are_bounded_before_their_bytes_arrive() {
        let mut bytes = vec![ClientCode::Hello as u8];
        put_bytes(&mut bytes, b"attacker");
        put_varuint(&mut bytes, 24);
        put_varuint(&mut bytes, 3);
        put_varuint(&mut bytes, 54468);
        put_bytes(&mut bytes, b"default");
        // A user name that declares 200 MB; only its length prefix has arrived.
        put_varuint(&mut bytes, 200 << 20);
        match ClientHello::decode(&bytes) {
            Err(DecodeError::Rejected { code, reason }) => {
                assert_eq!(code, crate::codes::TOO_LARGE_STRING_SIZE);
                assert!(reason.contains("user name"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn server_hello_is_re_announced_with_only_the_revision_changed() {
        let mut bytes = vec![0];
        put_bytes(&mut bytes, b"ClickHouse");
        put_varuint(&mut bytes, 25);
        put_varuint(&mut bytes, 8);
        put_varuint(&mut bytes, 54477);
        put_bytes(&mut bytes, b"UTC");
        put_bytes(&mut bytes, b"display");
        put_varuint(&mut bytes, 2);
        put_varuint(&mut bytes, 1); // one password rule
        put_bytes(&mut bytes, b".{12}");
        put_bytes(&mut bytes, b"at least 12 characters");
        bytes.extend_from_slice(&7u64.to_le_bytes());
        let (hello, len) = ServerHello::decode(&bytes, Revision(54469)).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(hello.timezone.as_deref(), Some("UTC"));
        assert_eq!(hello.version_patch, Some(2));
        let out = hello.encode_with_revision(Revision(54469));
        let (again, _) = ServerHello::decode(&out, Revision(54469)).unwrap();
        assert_eq!(again.revision, Revision(54469));
        assert_eq!(out.len(), bytes.len());
    }
}
