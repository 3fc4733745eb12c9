//! ClientInfo: who sent a query and from where, as ClickHouse's `ClientInfo::write` puts it in a Query packet.

use super::error::DecodeError;
use super::revision::{Feature, Revision};
use super::wire::{put_bytes, put_varuint, Reader};

/// ClientInfo interface values (`ClientInfo::Interface`).
pub(super) const INTERFACE_TCP: u8 = 1;
pub(super) const INTERFACE_HTTP: u8 = 2;

/// `ClientInfo::write` up to [`PROXY_MAX_REVISION`](super::PROXY_MAX_REVISION).
///
/// With [`QueryKind::NoQuery`] nothing but the kind is on the wire and the other fields decode as their defaults.
/// Fields marked with a feature are written only at revisions that have it and decode as zero or empty below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub kind: QueryKind,
    /// For a secondary query, the user, query id and `ip:port` of the query that started it.
    pub initial_user: Vec<u8>,
    pub initial_query_id: Vec<u8>,
    pub initial_address: Vec<u8>,
    /// Microseconds since the epoch (`Feature::InitialQueryStartTime`).
    pub initial_query_start_time_us: u64,
    pub interface: Interface,
    /// `Feature::QuotaKeyInClientInfo`.
    pub quota_key: Vec<u8>,
    /// Hops through Distributed tables (`Feature::DistributedDepth`).
    pub distributed_depth: u64,
    /// `Feature::OpenTelemetry`.
    pub trace_context: Option<TraceContext>,
    /// `Feature::ParallelReplicas`.
    pub parallel_replicas: ParallelReplicas,
}

/// `ClientInfo::QueryKind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueryKind {
    /// No query: the rest of the ClientInfo is absent.
    #[default]
    NoQuery = 0,
    /// A query a user sent.
    Initial = 1,
    /// A query one server sends another on behalf of an initial query.
    Secondary = 2,
}

/// The interface the query arrived on, with the fields ClickHouse keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interface {
    Tcp(TcpClient),
    Http(HttpClient),
    /// Any other interface code (gRPC, MySQL, …), which carries no fields here. Never 1 or 2: those are the
    /// variants above.
    Other(u8),
}

impl Default for Interface {
    fn default() -> Self {
        Interface::Tcp(TcpClient::default())
    }
}

/// A native-protocol client, as it introduced itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpClient {
    pub os_user: Vec<u8>,
    pub client_hostname: Vec<u8>,
    pub client_name: Vec<u8>,
    pub version_major: u64,
    pub version_minor: u64,
    /// The client's own protocol revision (not the negotiated one).
    pub revision: u64,
    /// Written after the quota key and distributed depth (`Feature::VersionPatch`).
    pub version_patch: u64,
}

/// An HTTP client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpClient {
    /// `ClientInfo::HTTPMethod` (1 GET, 2 POST, …).
    pub method: u8,
    pub user_agent: Vec<u8>,
    /// `Feature::XForwardedFor`.
    pub forwarded_for: Vec<u8>,
    /// `Feature::Referer`.
    pub referer: Vec<u8>,
}

/// An OpenTelemetry trace context (`OpenTelemetry::TracingContext`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// A UUID in ClickHouse's binary form.
    pub trace_id: [u8; 16],
    pub span_id: u64,
    pub tracestate: Vec<u8>,
    pub trace_flags: u8,
}

/// Parallel-replicas coordinates of a query (all zero from ordinary clients).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParallelReplicas {
    pub collaborate_with_initiator: u64,
    pub count_participating_replicas: u64,
    pub number_of_current_replica: u64,
}

impl ClientInfo {
    pub(super) fn decode(r: &mut Reader<'_>, revision: Revision) -> Result<ClientInfo, DecodeError> {
        let kind = match r.u8()? {
            0 => return Ok(ClientInfo::default()),
            1 => QueryKind::Initial,
            2 => QueryKind::Secondary,
            other => return Err(DecodeError::malformed(format!("query kind {other}"))),
        };
        let initial_user = r.bytes()?.to_vec();
        let initial_query_id = r.bytes()?.to_vec();
        let initial_address = r.bytes()?.to_vec();
        let initial_query_start_time_us = if revision.has(Feature::InitialQueryStartTime) {
            r.u64_le()?
        } else {
            0
        };
        let mut interface = match r.u8()? {
            INTERFACE_TCP => Interface::Tcp(TcpClient {
                os_user: r.bytes()?.to_vec(),
                client_hostname: r.bytes()?.to_vec(),
                client_name: r.bytes()?.to_vec(),
                version_major: r.varuint()?,
                version_minor: r.varuint()?,
                revision: r.varuint()?,
                version_patch: 0, // after the quota key and the distributed depth
            }),
            INTERFACE_HTTP => Interface::Http(HttpClient {
                method: r.u8()?,
                user_agent: r.bytes()?.to_vec(),
                forwarded_for: optional_bytes(r, revision.has(Feature::XForwardedFor))?,
                referer: optional_bytes(r, revision.has(Feature::Referer))?,
            }),
            other => Interface::Other(other),
        };
        let quota_key = optional_bytes(r, revision.has(Feature::QuotaKeyInClientInfo))?;
        let distributed_depth = if revision.has(Feature::DistributedDepth) {
            r.varuint()?
        } else {
            0
        };
        if let Interface::Tcp(tcp) = &mut interface {
            if revision.has(Feature::VersionPatch) {
                tcp.version_patch = r.varuint()?;
            }
        }
        let trace_context = if revision.has(Feature::OpenTelemetry) && r.bool()? {
            let mut trace_id = [0u8; 16];
            trace_id.copy_from_slice(r.take(16)?);
            Some(TraceContext {
                trace_id,
                span_id: r.u64_le()?,
                tracestate: r.bytes()?.to_vec(),
                trace_flags: r.u8()?,
            })
        } else {
            None
        };
        let parallel_replicas = if revision.has(Feature::ParallelReplicas) {
            ParallelReplicas {
                collaborate_with_initiator: r.varuint()?,
                count_participating_replicas: r.varuint()?,
                number_of_current_replica: r.varuint()?,
            }
        } else {
            ParallelReplicas::default()
        };
        Ok(ClientInfo {
            kind,
            initial_user,
            initial_query_id,
            initial_address,
            initial_query_start_time_us,
            interface,
            quota_key,
            distributed_depth,
            trace_context,
            parallel_replicas,
        })
    }

    pub(super) fn encode(&self, revision: Revision, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        if self.kind == QueryKind::NoQuery {
            return;
        }
        put_bytes(out, &self.initial_user);
        put_bytes(out, &self.initial_query_id);
        put_bytes(out, &self.initial_address);
        if revision.has(Feature::InitialQueryStartTime) {
            out.extend_from_slice(&self.initial_query_start_time_us.to_le_bytes());
        }
        match &self.interface {
            Interface::Tcp(tcp) => {
                out.push(INTERFACE_TCP);
                put_bytes(out, &tcp.os_user);
                put_bytes(out, &tcp.client_hostname);
                put_bytes(out, &tcp.client_name);
                put_varuint(out, tcp.version_major);
                put_varuint(out, tcp.version_minor);
                put_varuint(out, tcp.revision);
            }
            Interface::Http(http) => {
                out.push(INTERFACE_HTTP);
                out.push(http.method);
                put_bytes(out, &http.user_agent);
                if revision.has(Feature::XForwardedFor) {
                    put_bytes(out, &http.forwarded_for);
                }
                if revision.has(Feature::Referer) {
                    put_bytes(out, &http.referer);
                }
            }
            Interface::Other(code) => out.push(*code),
        }
        if revision.has(Feature::QuotaKeyInClientInfo) {
            put_bytes(out, &self.quota_key);
        }
        if revision.has(Feature::DistributedDepth) {
            put_varuint(out, self.distributed_depth);
        }
        if let Interface::Tcp(tcp) = &self.interface {
            if revision.has(Feature::VersionPatch) {
                put_varuint(out, tcp.version_patch);
            }
        }
        if revision.has(Feature::OpenTelemetry) {
            match &self.trace_context {
                None => out.push(0),
                Some(trace) => {
                    out.push(1);
                    out.extend_from_slice(&trace.trace_id);
                    out.extend_from_slice(&trace.span_id.to_le_bytes());
                    put_bytes(out, &trace.tracestate);
                    out.push(trace.trace_flags);
                }
            }
        }
        if revision.has(Feature::ParallelReplicas) {
            let p = &self.parallel_replicas;
            put_varuint(out, p.collaborate_with_initiator);
            put_varuint(out, p.count_participating_replicas);
            put_varuint(out, p.number_of_current_replica);
        }
    }
}

/// A string the revision may not carry: empty when it does not.
fn optional_bytes(r: &mut Reader<'_>, present: bool) -> Result<Vec<u8>, DecodeError> {
    Ok(if present { r.bytes()?.to_vec() } else { Vec::new() })
}

/// `ClientInfo::write` up to the proxy's maximum revision.
pub(super) fn skip_client_info(r: &mut Reader<'_>, revision: Revision) -> Result<(), DecodeError> {
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
