use clap::Parser;

/// glibc's allocator spends a tenth of the proxy's time on the request path's short-lived
/// buffers (measured with perf, including `malloc_consolidate`); mimalloc's per-thread pages
/// suit that pattern.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use frontdesk_proxy::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr as JSON; stdout carries the access log alone.
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    // One worker: a current-thread runtime skips the work-stealing machinery (cross-thread
    // wake-ups, atomics), which is pure overhead when there is nobody to steal from.
    let mut rt = match cli.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    rt.enable_all().build()?.block_on(frontdesk_proxy::run(cli))
}
