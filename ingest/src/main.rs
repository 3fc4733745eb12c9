use std::process::ExitCode;

use clap::Parser;

use aurora_common::telemetry;
use aurora_ingest::cli::{Cli, Command};
use aurora_ingest::config::{Config, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aurora-ingest: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aurora-ingest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run => {
            telemetry::init_logging(match config.log_format {
                LogFormat::Text => telemetry::LogFormat::Text,
                LogFormat::Json => telemetry::LogFormat::Json,
            });
            runtime.block_on(aurora_ingest::daemon::run(config))
        }
        command => runtime.block_on(aurora_ingest::cli::client(command, &config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("aurora-ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
