use clap::Parser;

use aurora_common::telemetry;
use aurora_proxy::config::{Cli, Config};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Kept for SIGHUP, which reloads the proxy users from the same flags, environment and file.
    let config = match Config::load(cli.clone()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("aurora-proxy: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init_logging(config.log_format.into());
    if let Some(library) = &config.ort_library {
        // Before any thread starts: ONNX Runtime reads this when the embedding model loads.
        std::env::set_var("ORT_DYLIB_PATH", library);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("aurora-proxy: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(aurora_proxy::server::run(config, cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("aurora-proxy: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
