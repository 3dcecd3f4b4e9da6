//! The `beacon` binary: parse the command line, run the subcommand.

use clap::Parser;

/// See Cargo.toml: RSS that follows the live heap at 10,000 services.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
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

/// mimalloc asks the kernel for transparent huge pages for its arenas
/// (`madvise`), and where the host allows them on request (Debian's and
/// most distributions' default) each first touch of a 2 MB region then
/// zeroes and keeps all of it: after every purge of freed memory, again. At
/// 5,000 probes a second that was 4 % of beacon's CPU in the kernel
/// (`clear_page_erms`) and a quarter of its RSS (213 MB against 157 MB
/// without; docs/performance.md). beacon's heap is many small objects
/// rebuilt often, which huge pages do not serve, so the process turns them
/// off for itself (`PR_SET_THP_DISABLE`, which mimalloc's
/// `MIMALLOC_ALLOW_THP=0` also does, but only from the environment). A
/// kernel that refuses changes nothing else.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}
