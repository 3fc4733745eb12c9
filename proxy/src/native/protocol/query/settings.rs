//! A Query's settings and parameters lists: `(name, flags, value)` strings since
//! `Feature::SettingsAsStrings`, and before it the binary form, which is skipped (kept opaque), not decoded.

use crate::native::protocol::error::DecodeError;
use crate::native::protocol::revision::{Feature, Revision};
use crate::native::protocol::wire::{put_bytes, put_varuint, Reader};

/// A query's settings, in the form the revision uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    /// `(name, flags, value)` strings (`Feature::SettingsAsStrings` and later).
    Strings(Vec<Setting>),
    /// Before `Feature::SettingsAsStrings`: the raw bytes of the list, terminator included. Each value is in its
    /// setting type's binary form, which only the exact server version knows, so the list is kept opaque.
    Binary(Vec<u8>),
}

impl Default for Settings {
    /// No settings; written as a bare terminator, which every revision reads as an empty list.
    fn default() -> Self {
        Settings::Strings(Vec::new())
    }
}

/// One entry of a settings or parameters list (`BaseSettings::write` in STRINGS_WITH_FLAGS form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: Vec<u8>,
    /// [`Setting::IMPORTANT`], [`Setting::CUSTOM`] and tier bits.
    pub flags: u64,
    /// The value as text; for parameters a quoted SQL literal.
    pub value: Vec<u8>,
}

impl Setting {
    /// The server must refuse the query if it does not know this setting.
    pub const IMPORTANT: u64 = 0x01;
    /// A custom setting; query parameters carry this flag.
    pub const CUSTOM: u64 = 0x02;
}

pub(super) fn decode_setting_list(r: &mut Reader<'_>) -> Result<Vec<Setting>, DecodeError> {
    let mut list = Vec::new();
    loop {
        let name = r.bytes()?;
        if name.is_empty() {
            return Ok(list);
        }
        list.push(Setting {
            name: name.to_vec(),
            flags: r.varuint()?,
            value: r.bytes()?.to_vec(),
        });
    }
}

pub(super) fn encode_setting_list(list: &[Setting], out: &mut Vec<u8>) {
    for setting in list {
        debug_assert!(
            !setting.name.is_empty(),
            "a setting with an empty name ends the list"
        );
        put_bytes(out, &setting.name);
        put_varuint(out, setting.flags);
        put_bytes(out, &setting.value);
    }
    put_bytes(out, b"");
}

pub(super) fn skip_settings(r: &mut Reader<'_>, revision: Revision) -> Result<(), DecodeError> {
    if revision.has(Feature::SettingsAsStrings) {
        skip_string_settings(r)
    } else {
        skip_binary_settings(r)
    }
}

/// `(name, flags, value)` triples ending with an empty name.
pub(super) fn skip_string_settings(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    while !r.bytes()?.is_empty() {
        r.varuint()?;
        r.bytes()?;
    }
    Ok(())
}

/// Old servers (before `SettingsAsStrings`) read each value in its setting type's binary form: a string for
/// floats, enums, strings and chars, a (zig-zag or plain) varint for all others. The two varint forms have the
/// same length, so only the names whose values are strings matter. Names from ClickHouse 18.x–19.x `Settings.h`.
const STRING_VALUED_SETTINGS: &[&str] = &[
    "count_distinct_implementation",
    "date_time_input_format",
    "distinct_overflow_mode",
    "distributed_product_mode",
    "format_csv_delimiter",
    "format_schema",
    "global_subqueries_method",
    "group_by_overflow_mode",
    "input_format_allow_errors_ratio",
    "join_algorithm",
    "join_default_strictness",
    "join_overflow_mode",
    "load_balancing",
    "max_streams_to_max_threads_ratio",
    "memory_tracker_fault_probability",
    "network_compression_method",
    "read_overflow_mode",
    "result_overflow_mode",
    "send_logs_level",
    "set_overflow_mode",
    "sort_overflow_mode",
    "timeout_overflow_mode",
    "totals_auto_threshold",
    "totals_mode",
    "transfer_overflow_mode",
];

/// Longest setting name an old server's list is read with; ClickHouse's own are under 64 bytes.
const MAX_SETTING_NAME: u64 = 128;

/// A setting name as ClickHouse spells them: lower-case letters, digits and `_`.
fn setting_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

pub(super) fn skip_binary_settings(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    loop {
        // A value read in the wrong form (a newer client's setting whose type this list does not know, e.g. a
        // string-valued `dialect`) shows as a "name" that is not one: the packet cannot be framed, and the
        // connection is relayed as bytes (the server refuses the unknown setting itself). Checked on the bytes
        // that have arrived, so a wrong length never makes the proxy wait for bytes that are not coming.
        let start = r.position();
        let len = r.varuint()?;
        let arrived = r.remaining();
        let unreadable = || {
            DecodeError::unsupported(
                "a setting of the Query packet in the old binary form that the proxy cannot size (a newer client's setting)",
            )
        };
        if len > MAX_SETTING_NAME
            || !arrived[..arrived.len().min(len as usize)]
                .iter()
                .all(|&b| setting_name_byte(b))
        {
            return Err(unreadable());
        }
        r.seek(start)?;
        let name = r.bytes()?;
        if name.is_empty() {
            return Ok(());
        }
        let is_string = std::str::from_utf8(name).is_ok_and(|n| STRING_VALUED_SETTINGS.contains(&n));
        if is_string {
            r.bytes()?;
        } else {
            r.varuint()?;
        }
    }
}
