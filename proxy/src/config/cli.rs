//! The command line: `--config` and every setting of [`Settings`] as a flag, each also read from its
//! environment variable. Parsing remembers which keys a flag or the environment gave, so that the config file
//! fills in only the others (`file.rs`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args as _, Command, CommandFactory, FromArgMatches, Parser};

use super::settings::Settings;

/// `aurora-proxy`'s command line, parsed: flags over environment variables over defaults.
#[derive(Debug, Clone)]
pub struct Cli {
    /// The TOML file given by `--config` / `AURORA_CONFIG`.
    pub config: Option<PathBuf>,
    /// Every setting, from its flag, else its environment variable, else its default.
    pub settings: Settings,
    /// The keys a flag or an environment variable gave; the file does not override them.
    pub given: BTreeSet<String>,
}

/// What clap derives the command from; [`Cli`] adds where each value came from.
#[derive(Parser)]
#[command(
    name = "aurora-proxy",
    version,
    about = "ClickHouse native and HTTP proxy that answers ASK questions"
)]
struct Args {
    /// TOML config file; its keys are the flag names with '_' for '-'.
    #[arg(long, env = "AURORA_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

impl Cli {
    /// Every key of [`Settings`], in the order they are declared: the flags' ids, which are the TOML keys.
    pub fn keys() -> Vec<String> {
        Settings::augment_args(Command::new("keys"))
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .chain(FILE_ONLY_KEYS.iter().map(|key| key.to_string()))
            .collect()
    }
}

/// Keys the config file has and no flag: tables of their own.
pub const FILE_ONLY_KEYS: &[&str] = &["nodes", "users"];

/// The keys of `matches` whose value a flag or an environment variable gave (not a default).
fn given(matches: &ArgMatches) -> impl Iterator<Item = String> + '_ {
    matches
        .ids()
        .filter(|id| {
            matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.to_string())
}

impl CommandFactory for Cli {
    fn command() -> Command {
        Args::command()
    }

    fn command_for_update() -> Command {
        Args::command_for_update()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Cli, clap::Error> {
        let Args { config, settings } = Args::from_arg_matches(matches)?;
        Ok(Cli {
            config,
            settings,
            given: given(matches).filter(|key| key != "config").collect(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let mut args = Args {
            config: self.config.take(),
            settings: self.settings.clone(),
        };
        args.update_from_arg_matches(matches)?;
        self.config = args.config;
        self.settings = args.settings;
        self.given.extend(given(matches).filter(|key| key != "config"));
        Ok(())
    }
}

impl Parser for Cli {}
