//! The `beacon` binary: parse the command line, run the subcommand.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = beacon::cli::Cli::parse();
    beacon::telemetry::init();
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
