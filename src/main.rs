//! The `beacon` binary: parse the command line, run the subcommand.

use clap::Parser;

/// See Cargo.toml: RSS that follows the live heap at 10,000 services.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = beacon::cli::Cli::parse();
    beacon::telemetry::init(beacon::store::LOG_DIRECTIVES);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(beacon::cli::run(cli))
}
