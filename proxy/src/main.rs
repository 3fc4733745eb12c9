use clap::Parser;

use aurora_proxy::config::{Cli, Config, LogFormat};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("aurora-proxy: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
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
    match runtime.block_on(aurora_proxy::server::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("aurora-proxy: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
