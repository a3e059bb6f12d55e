use clap::Parser;

// mimalloc, as the proxy: under churn (a reload of 10,000 Routes every few seconds) glibc's
// per-thread arenas kept the freed peaks resident (bench-controller, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: frontdesk_allocator::MiMalloc = frontdesk_allocator::MiMalloc;
use frontdesk_controller::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // Each compile of a large catalog frees tens of MB at once; under churn the next one starts
    // before mimalloc's default second has passed, so the freed peaks stayed resident
    // (bench-controller's memory part, 90 s of churn: max 254 MB with the default, 203 MB
    // without; docs/benchmarks.md).
    frontdesk_allocator::purge_freed_memory_after(std::time::Duration::ZERO);
    // Memory given back at once comes back as 2 MiB zeroing faults with huge pages: the first
    // endpoint change after a compile took 30-50 ms instead of 3 (docs/benchmarks.md).
    let small_pages = frontdesk_allocator::without_transparent_huge_pages();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    if !small_pages && std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        tracing::warn!(
            "the kernel refused PR_SET_THP_DISABLE: transparent huge pages stay on, and the first endpoint change after a compile can be slower"
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(frontdesk_controller::run(cli))
}
