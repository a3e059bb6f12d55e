//! The port allocator every process-starting test relies on.

use frontdesk_e2e::free_port;

#[test]
fn ports_are_distinct_free_and_below_the_ephemeral_range() {
    let ports: Vec<_> = (0..200).map(|_| free_port()).collect();
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), ports.len());
    for addr in &ports {
        assert!((20_000..32_000).contains(&addr.port()), "{addr}");
        std::net::TcpListener::bind(addr).expect("a handed-out port is free");
    }
}
