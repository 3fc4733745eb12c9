//! The config file, laid under the flags and the environment: each of its keys replaces the default of a
//! setting that neither gave. The file is flat TOML, its keys those of [`Settings`]; an unknown key and a value
//! of the wrong type are each a [`Problem`] with that key, so one run reports all of them.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::cli::Cli;
use super::error::{ConfigError, Problem};
use super::settings::Settings;

/// `settings` (from flags, environment and defaults) with the file at `path` filling every key not in
/// `given`. Problems with the file's keys are added to `problems`; the settings returned then hold only its
/// valid keys.
pub fn overlay(
    settings: Settings,
    given: &BTreeSet<String>,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let file: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })?;
    // JSON values are the neutral form the layers meet in: unlike TOML's, their integers hold every u64.
    let base = match serde_json::to_value(&settings) {
        Ok(Value::Object(base)) => base,
        Ok(_) => unreachable!("settings serialize as a map"),
        Err(e) => {
            problems.push(Problem::new(
                "config",
                format!("cannot merge {}: {e}", path.display()),
            ));
            return Ok(settings);
        }
    };
    let keys = Cli::keys();
    let mut merged = base.clone();
    for (key, value) in file {
        if !keys.contains(&key) {
            problems.push(Problem::new(
                key,
                format!(
                    "unknown key in config file {} (the keys are the flag names with '_' for '-')",
                    path.display()
                ),
            ));
            continue;
        }
        let value = match serde_json::to_value(value) {
            Ok(value) => value,
            Err(e) => {
                problems.push(Problem::new(key, format!("{e} (config file {})", path.display())));
                continue;
            }
        };
        // Each value is checked alone, over valid ones, so that its error is its own — also when a flag or an
        // environment variable overrides it.
        let mut alone = base.clone();
        alone.insert(key.clone(), value.clone());
        if let Err(e) = deserialize(alone) {
            problems.push(Problem::new(key, format!("{e} (config file {})", path.display())));
        } else if !given.contains(&key) {
            merged.insert(key, value);
        }
    }
    deserialize(merged).map_err(|e| {
        // Every value was valid alone; settings are checked one key at a time, so together they are too.
        ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        }
    })
}

fn deserialize(map: Map<String, Value>) -> Result<Settings, serde_json::Error> {
    Settings::deserialize(Value::Object(map))
}
