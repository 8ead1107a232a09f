//! The test support itself: servers start, answer, and die on drop.

use cache_tests::{RedisCluster, RedisServer, raw_command};

#[test]
fn single_server_starts_restarts_and_dies_on_drop() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert!(raw_command(port, "PING").unwrap().starts_with("+PONG"));
    server.kill();
    assert!(raw_command(port, "PING").is_none());
    server.restart();
    assert!(raw_command(port, "PING").unwrap().starts_with("+PONG"));
    drop(server);
    assert!(raw_command(port, "PING").is_none());
}

#[test]
fn cluster_forms() {
    let cluster = RedisCluster::start();
    let info = raw_command(cluster.nodes[0].port(), "CLUSTER INFO").unwrap();
    assert!(info.contains("cluster_known_nodes:3"), "{info}");
}
