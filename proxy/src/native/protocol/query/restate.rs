//! A client's Query with another statement: what the proxy sends upstream for an ASK, in the client's own
//! packet (its client info, settings and compression).

use super::{Query, Setting, Settings};
use crate::native::protocol::revision::{Feature, Revision};
use crate::native::protocol::wire::{put_bytes, put_varuint};

/// Why a Query cannot be restated with what was asked of it at a revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestateError {
    #[error("this connection's protocol revision has no query parameters")]
    NoParameters,
    #[error("this server's protocol sends settings in binary form, so ASK cannot pass SETTINGS {name}; run SET {name} = {value} before the ASK instead")]
    BinarySetting { name: String, value: String },
    #[error("readonly = {0} is not a number")]
    NotANumber(String),
}

impl Query {
    /// This Query (its client info, settings and compression) with another statement: a fresh query id, the
    /// complete stage, `parameters` (name, value already written as a quoted literal) as query parameters, and
    /// `settings` set over the client's own as IMPORTANT strings. Before `Feature::SettingsAsStrings` the settings
    /// list is binary and only `readonly` (a UInt64, a varint) can be added.
    pub fn restated(
        &self,
        sql: &str,
        parameters: &[(String, Vec<u8>)],
        settings: &[(String, String)],
        revision: Revision,
    ) -> Result<Query, RestateError> {
        let mut query = self.clone();
        query.query = sql.as_bytes().to_vec();
        query.query_id = Vec::new();
        query.stage = Query::STAGE_COMPLETE;
        if revision.has(Feature::Parameters) {
            query.parameters = Some(
                parameters
                    .iter()
                    .map(|(name, value)| Setting {
                        name: name.clone().into_bytes(),
                        flags: Setting::CUSTOM,
                        value: value.clone(),
                    })
                    .collect(),
            );
        } else if !parameters.is_empty() {
            return Err(RestateError::NoParameters);
        }
        match &mut query.settings {
            Settings::Strings(list) => {
                for (name, value) in settings {
                    list.retain(|s| s.name != name.as_bytes());
                    list.push(Setting {
                        name: name.clone().into_bytes(),
                        flags: Setting::IMPORTANT,
                        value: value.clone().into_bytes(),
                    });
                }
            }
            Settings::Binary(raw) => {
                for (name, value) in settings {
                    // Each value is in its type's binary form; `readonly` is a UInt64, the others have types only
                    // the server's version knows.
                    if name != "readonly" {
                        return Err(RestateError::BinarySetting {
                            name: name.clone(),
                            value: value.clone(),
                        });
                    }
                    let number = value
                        .parse::<u64>()
                        .map_err(|_| RestateError::NotANumber(value.clone()))?;
                    // The list ends with an empty name; insert before it.
                    let end = raw.pop();
                    debug_assert_eq!(end, Some(0), "binary settings end with an empty name");
                    put_bytes(raw, name.as_bytes());
                    put_varuint(raw, number);
                    raw.push(0);
                }
            }
        }
        Ok(query)
    }
}
