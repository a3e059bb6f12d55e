use clap::Parser;

/// mimalloc (the `frontdesk-allocator` crate says why, and how it is asked).
#[global_allocator]
static GLOBAL: frontdesk_allocator::MiMalloc = frontdesk_allocator::MiMalloc;

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
