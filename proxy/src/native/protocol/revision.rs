//! Protocol revisions as named features.
//!
//! Every field whose presence depends on the negotiated revision is gated by one of these features; the numbers
//! mirror ClickHouse's `src/Core/ProtocolDefines.h` (`DBMS_MIN_REVISION_WITH_…` / `DBMS_MIN_PROTOCOL_VERSION_WITH_…`).

/// A negotiated protocol revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub u64);

/// The highest revision the proxy speaks. Every revision-dependent field up to here is modelled below.
/// 54470 introduces chunked packets, which the proxy does not implement; capping below it makes both peers
/// fall back to plain packets (ClickHouse's default `proto_caps` is "notchunked").
pub const PROXY_MAX_REVISION: Revision = Revision(54469);

impl Revision {
    /// Whether a peer at this revision has `feature`.
    pub const fn has(self, feature: Feature) -> bool {
        self.0 >= feature.revision()
    }

    /// The revision both ends of a proxied connection use: the smallest of the three.
    pub fn negotiate(client: Revision, server: Revision) -> Revision {
        client.min(server).min(PROXY_MAX_REVISION)
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Revision-dependent protocol features the proxy reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `DBMS_MIN_REVISION_WITH_CLIENT_INFO`: the Query packet carries a ClientInfo.
    ClientInfo,
    /// `DBMS_MIN_REVISION_WITH_SERVER_TIMEZONE`: server Hello carries the server's time zone.
    ServerTimezone,
    /// `DBMS_MIN_REVISION_WITH_QUOTA_KEY_IN_CLIENT_INFO`.
    QuotaKeyInClientInfo,
    /// `DBMS_MIN_REVISION_WITH_SERVER_DISPLAY_NAME`: server Hello carries the display name.
    ServerDisplayName,
    /// `DBMS_MIN_REVISION_WITH_VERSION_PATCH`: Hello and ClientInfo carry the patch version.
    VersionPatch,
    /// `DBMS_MIN_REVISION_WITH_CLIENT_WRITE_INFO`: Progress carries written rows and bytes.
    ClientWriteInfo,
    /// `DBMS_MIN_REVISION_WITH_SETTINGS_SERIALIZED_AS_STRINGS`: settings as (name, flags, value) strings;
    /// before it each value is written in its setting type's binary form.
    SettingsAsStrings,
    /// `DBMS_MIN_REVISION_WITH_INTERSERVER_SECRET`: the Query packet carries an inter-server hash string.
    InterserverSecret,
    /// `DBMS_MIN_REVISION_WITH_OPENTELEMETRY`: ClientInfo carries an optional trace context.
    OpenTelemetry,
    /// `DBMS_MIN_REVISION_WITH_X_FORWARDED_FOR_IN_CLIENT_INFO` (HTTP client info only).
    XForwardedFor,
    /// `DBMS_MIN_REVISION_WITH_REFERER_IN_CLIENT_INFO` (HTTP client info only).
    Referer,
    /// `DBMS_MIN_PROTOCOL_VERSION_WITH_DISTRIBUTED_DEPTH`.
    DistributedDepth,
    /// `DBMS_MIN_PROTOCOL_VERSION_WITH_INITIAL_QUERY_START_TIME`.
    InitialQueryStartTime,
    /// `DBMS_MIN_REVISION_WITH_PARALLEL_REPLICAS`: three varuints at the end of ClientInfo.
    ParallelReplicas,
    /// `DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION`: each block column carries a custom-serialization flag.
    CustomSerialization,
    /// `DBMS_MIN_PROTOCOL_VERSION_WITH_ADDENDUM`: after the handshake the client sends an addendum (quota key).
    Addendum,
    /// `DBMS_MIN_PROTOCOL_VERSION_WITH_PARAMETERS`: the Query packet carries query parameters.
    Parameters,
    /// `DBMS_MIN_PROTOCOL_VERSION_WITH_SERVER_QUERY_TIME_IN_PROGRESS`: Progress carries elapsed nanoseconds.
    ServerQueryTimeInProgress,
    /// `DBMS_MIN_PROTOCOL_VERSION_WITH_PASSWORD_COMPLEXITY_RULES`: server Hello lists password rules.
    PasswordComplexityRules,
    /// `DBMS_MIN_REVISION_WITH_INTERSERVER_SECRET_V2`: server Hello carries a nonce.
    InterserverSecretV2,
    /// `DBMS_MIN_PROTOCOL_VERSION_WITH_TOTAL_BYTES_IN_PROGRESS`: Progress carries total bytes to read.
    TotalBytesInProgress,
    /// `DBMS_MIN_REVISION_WITH_SSH_AUTHENTICATION`: SSH challenge packets during the handshake.
    SshAuthentication,
    /// `DBMS_MIN_REVISION_WITH_TABLE_READ_ONLY_CHECK`: TablesStatusResponse carries `is_readonly`.
    TableReadOnlyCheck,
    /// `DBMS_MIN_REVISION_WITH_ROWS_BEFORE_AGGREGATION`: ProfileInfo carries rows before aggregation.
    RowsBeforeAggregation,
}

impl Feature {
    /// The first revision with this feature.
    pub const fn revision(self) -> u64 {
        match self {
            Feature::ClientInfo => 54032,
            Feature::ServerTimezone => 54058,
            Feature::QuotaKeyInClientInfo => 54060,
            Feature::ServerDisplayName => 54372,
            Feature::VersionPatch => 54401,
            Feature::ClientWriteInfo => 54420,
            Feature::SettingsAsStrings => 54429,
            Feature::InterserverSecret => 54441,
            Feature::OpenTelemetry => 54442,
            Feature::XForwardedFor => 54443,
            Feature::Referer => 54447,
            Feature::DistributedDepth => 54448,
            Feature::InitialQueryStartTime => 54449,
            Feature::ParallelReplicas => 54453,
            Feature::CustomSerialization => 54454,
            Feature::Addendum => 54458,
            Feature::Parameters => 54459,
            Feature::ServerQueryTimeInProgress => 54460,
            Feature::PasswordComplexityRules => 54461,
            Feature::InterserverSecretV2 => 54462,
            Feature::TotalBytesInProgress => 54463,
            Feature::SshAuthentication => 54466,
            Feature::TableReadOnlyCheck => 54467,
            Feature::RowsBeforeAggregation => 54469,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_smallest() {
        let old_server = Revision(54412);
        let driver = Revision(54468);
        assert_eq!(Revision::negotiate(driver, old_server), old_server);
        assert_eq!(
            Revision::negotiate(Revision(54480), Revision(54490)),
            PROXY_MAX_REVISION
        );
        assert!(!old_server.has(Feature::SettingsAsStrings));
        assert!(driver.has(Feature::Parameters));
        assert!(PROXY_MAX_REVISION.has(Feature::ServerQueryTimeInProgress));
    }
}
