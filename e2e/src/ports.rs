//! Ports for the processes a test starts on 127.0.0.1.
//!
//! Asking the kernel for port 0 and handing the number to a child process races: between the
//! probe closing and the child binding, the kernel may give the same ephemeral port to anyone
//! else, including the source port of an outgoing connection from a test running in parallel.
//! So ports come from below the ephemeral range (Linux default 32768–60999), where the kernel
//! never assigns ports by itself, in a sequence no two calls of one test process repeat, and
//! each is checked free before it is handed out. Shared by the proxy's tests (`#[path]`) and
//! the e2e crate.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000; // up to 31_999

/// A free port on 127.0.0.1 that nothing in this process was given before.
pub fn free_port() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Start each test process at its own place in the range, so test binaries running one
    // after another (or side by side) do not walk over each other's TIME_WAIT sockets.
    let _ = NEXT.compare_exchange(u32::MAX, seed() % COUNT, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % COUNT;
        let addr = SocketAddr::from(([127, 0, 0, 1], (FIRST + offset) as u16));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in 127.0.0.1:{FIRST}-{}", FIRST + COUNT - 1);
}

fn seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().wrapping_mul(7919) ^ nanos
}
