//! The Query packet, in two forms.
//!
//! - [`decode_query`] is the relay's fast path: it borrows, skips what the proxy does not act on and returns where
//!   the SQL text is and whether the blocks that follow are compressed. The proxy forwards the original bytes.
//! - [`Query`] is the whole packet, owned, for reading every field and for building queries the proxy sends
//!   itself. [`Query::decode`] then [`Query::encode`] at the same revision gives back the same bytes.
//!
//! Field order (ClickHouse `Connection::sendQuery`, `TCPHandler::receiveQuery`): query id, ClientInfo, settings,
//! inter-server secret, stage, compression, query text, parameters. Every gated field follows the negotiated
//! revision.
//!
//! The settings and parameters lists both forms read and write are in `settings`; restating a client's Query
//! with another statement (what ASK sends upstream) is in `restate`.

use super::client_info::skip_client_info;
pub use super::client_info::{
    ClientInfo, HttpClient, Interface, ParallelReplicas, QueryKind, TcpClient, TraceContext,
};
use super::error::DecodeError;
use super::packets::ClientCode;
use super::revision::{Feature, Revision};
use super::wire::{put_bytes, put_varuint, Reader};

mod restate;
mod settings;

pub use restate::RestateError;
pub use settings::{Setting, Settings};

use settings::{
    decode_setting_list, encode_setting_list, skip_binary_settings, skip_settings, skip_string_settings,
};

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

/// A whole Query packet, owned.
///
/// Fields a revision does not carry are `None` (or, inside [`ClientInfo`], zero or empty) after decoding, and
/// [`Query::encode`] leaves them out at such a revision: check [`Revision::has`] before relying on, say,
/// parameters reaching an old server. A gated field that is `None` at a revision that carries it is written
/// empty, as ClickHouse's own client does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Empty lets the server pick one.
    pub query_id: Vec<u8>,
    /// Who asks and how (`Feature::ClientInfo`).
    pub client_info: Option<ClientInfo>,
    pub settings: Settings,
    /// The inter-server hash, empty from ordinary clients (`Feature::InterserverSecret`).
    pub interserver_secret: Option<Vec<u8>>,
    /// The processing stage the client asks for ([`Query::STAGE_COMPLETE`] from ordinary clients).
    pub stage: u64,
    /// Whether Data blocks of this query travel compressed, in both directions.
    pub compression: bool,
    /// The SQL text, as bytes (ClickHouse accepts any bytes in string literals).
    pub query: Vec<u8>,
    /// Values of `{name:Type}` placeholders, with [`Setting::CUSTOM`] flags (`Feature::Parameters`).
    pub parameters: Option<Vec<Setting>>,
}

impl Query {
    /// `QueryProcessingStage::Complete`: the server runs the query to the end.
    pub const STAGE_COMPLETE: u64 = 2;

    /// Decodes a Query packet body (after its code) sent at `revision`.
    pub fn decode(r: &mut Reader<'_>, revision: Revision) -> Result<Query, DecodeError> {
        let query_id = r.bytes()?.to_vec();
        let client_info = revision
            .has(Feature::ClientInfo)
            .then(|| ClientInfo::decode(r, revision))
            .transpose()?;
        let settings = if revision.has(Feature::SettingsAsStrings) {
            Settings::Strings(decode_setting_list(r)?)
        } else {
            let start = r.position();
            skip_binary_settings(r)?;
            Settings::Binary(r.consumed_since(start).to_vec())
        };
        let interserver_secret = revision
            .has(Feature::InterserverSecret)
            .then(|| r.bytes().map(<[u8]>::to_vec))
            .transpose()?;
        let stage = r.varuint()?;
        let compression = match r.varuint()? {
            0 => false,
            1 => true,
            other => return Err(DecodeError::malformed(format!("query compression flag {other}"))),
        };
        let query = r.bytes()?.to_vec();
        let parameters = revision
            .has(Feature::Parameters)
            .then(|| decode_setting_list(r))
            .transpose()?;
        Ok(Query {
            query_id,
            client_info,
            settings,
            interserver_secret,
            stage,
            compression,
            query,
            parameters,
        })
    }

    /// Appends this packet, its code included, as sent at `revision`.
    ///
    /// `settings` must be in the revision's form, as [`Query::decode`] leaves them: `Binary` bytes cannot be
    /// turned into strings nor strings into an old server's binary values, so a list in the other form is written
    /// empty (and fails debug builds). An empty `Strings` list fits every revision.
    pub fn encode(&self, revision: Revision, out: &mut Vec<u8>) {
        put_varuint(out, ClientCode::Query as u64);
        put_bytes(out, &self.query_id);
        if revision.has(Feature::ClientInfo) {
            match &self.client_info {
                Some(info) => info.encode(revision, out),
                None => out.push(QueryKind::NoQuery as u8),
            }
        }
        match (&self.settings, revision.has(Feature::SettingsAsStrings)) {
            (Settings::Strings(list), true) => encode_setting_list(list, out),
            (Settings::Binary(raw), false) => out.extend_from_slice(raw),
            (settings, _) => {
                debug_assert!(
                    matches!(settings, Settings::Strings(list) if list.is_empty()),
                    "settings in the wrong form for revision {revision}"
                );
                put_bytes(out, b"");
            }
        }
        if revision.has(Feature::InterserverSecret) {
            put_bytes(out, self.interserver_secret.as_deref().unwrap_or_default());
        }
        put_varuint(out, self.stage);
        put_varuint(out, u64::from(self.compression));
        put_bytes(out, &self.query);
        if revision.has(Feature::Parameters) {
            encode_setting_list(self.parameters.as_deref().unwrap_or_default(), out);
        }
    }
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
