//! Packet type codes (ClickHouse `src/Core/Protocol.h`).

/// Packets a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCode {
    Hello = 0,
    Query = 1,
    Data = 2,
    Cancel = 3,
    Ping = 4,
    TablesStatusRequest = 5,
    KeepAlive = 6,
    Scalar = 7,
    IgnoredPartUuids = 8,
    ReadTaskResponse = 9,
    MergeTreeReadTaskResponse = 10,
    SshChallengeRequest = 11,
    SshChallengeResponse = 12,
    QueryPlan = 13,
}

impl ClientCode {
    pub fn from_u64(code: u64) -> Option<Self> {
        use ClientCode::*;
        Some(match code {
            0 => Hello,
            1 => Query,
            2 => Data,
            3 => Cancel,
            4 => Ping,
            5 => TablesStatusRequest,
            6 => KeepAlive,
            7 => Scalar,
            8 => IgnoredPartUuids,
            9 => ReadTaskResponse,
            10 => MergeTreeReadTaskResponse,
            11 => SshChallengeRequest,
            12 => SshChallengeResponse,
            13 => QueryPlan,
            _ => return None,
        })
    }
}

/// Packets a server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCode {
    Hello = 0,
    Data = 1,
    Exception = 2,
    Progress = 3,
    Pong = 4,
    EndOfStream = 5,
    ProfileInfo = 6,
    Totals = 7,
    Extremes = 8,
    TablesStatusResponse = 9,
    Log = 10,
    TableColumns = 11,
    PartUuids = 12,
    ReadTaskRequest = 13,
    ProfileEvents = 14,
    MergeTreeAllRangesAnnouncement = 15,
    MergeTreeReadTaskRequest = 16,
    TimezoneUpdate = 17,
    SshChallenge = 18,
}

impl ServerCode {
    pub fn from_u64(code: u64) -> Option<Self> {
        use ServerCode::*;
        Some(match code {
            0 => Hello,
            1 => Data,
            2 => Exception,
            3 => Progress,
            4 => Pong,
            5 => EndOfStream,
            6 => ProfileInfo,
            7 => Totals,
            8 => Extremes,
            9 => TablesStatusResponse,
            10 => Log,
            11 => TableColumns,
            12 => PartUuids,
            13 => ReadTaskRequest,
            14 => ProfileEvents,
            15 => MergeTreeAllRangesAnnouncement,
            16 => MergeTreeReadTaskRequest,
            17 => TimezoneUpdate,
            18 => SshChallenge,
            _ => return None,
        })
    }
}
