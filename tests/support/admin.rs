//! Server-side switches the fault tests flip on a server they started, over a connection of
//! their own: refusing new connections (`maxclients`) and reading `INFO` counters.

use redis::aio::MultiplexedConnection;

/// The number `field` of the `INFO` section `section` (e.g. `"stats"`,
/// `"rejected_connections"`).
pub async fn info_number(conn: &mut MultiplexedConnection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .expect("INFO");
    crate::info_field(&info, field)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no number {field}"))
}

/// From now on the server refuses new connections, also once one of today's closes: its
/// `maxclients` is set one below the clients connected now (`conn` among them, which stays).
pub async fn refuse_new_connections(conn: &mut MultiplexedConnection) {
    let clients = info_number(conn, "clients", "connected_clients").await;
    set_max_clients(conn, clients - 1).await;
}

/// Undoes [`refuse_new_connections`].
pub async fn accept_connections(conn: &mut MultiplexedConnection) {
    set_max_clients(conn, 10_000).await;
}

async fn set_max_clients(conn: &mut MultiplexedConnection, n: u64) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(n)
        .query_async::<()>(conn)
        .await
        .expect("CONFIG SET maxclients");
}
