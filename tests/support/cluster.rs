//! A throwaway Redis Cluster ([`RedisCluster`]): three masters on free loopback ports, with or
//! without one replica each, built from [`RedisServer`]s.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{RedisServer, cli, info_field, poll};

/// A Redis Cluster: three masters, with or without one replica each.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, creates the cluster and waits until it is `ok`.
    pub fn start() -> Self {
        Self::start_with(0, 2000)
    }

    /// Three masters with one replica each (`--cluster-replicas 1`) and a node timeout of
    /// 1 s, so that a killed master is replaced by its replica within a few seconds. Returns
    /// once every replica is in sync with its master.
    pub fn start_with_replicas() -> Self {
        let cluster = Self::start_with(1, 1000);
        for (i, n) in cluster.nodes.iter().enumerate() {
            if cluster.role(i).as_deref() == Some("slave") {
                poll("a replica in sync", Duration::from_secs(20), || {
                    cli(n.port(), &["INFO", "replication"])
                        .is_some_and(|r| r.contains("master_link_status:up"))
                });
            }
        }
        cluster
    }

    fn start_with(replicas: usize, node_timeout_ms: u64) -> Self {
        let node_timeout = node_timeout_ms.to_string();
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &node_timeout,
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port()));
        }
        let status = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok`.
    fn wait_ok(&self) {
        poll("the redis cluster ready", Duration::from_secs(20), || {
            (0..self.nodes.len()).all(|i| self.healthy_from(i))
        });
    }

    /// Restarts every node (after they were killed: their data is lost, the cluster's layout
    /// is kept in each node's `nodes.conf`) and waits until the cluster is `ok` again.
    pub fn restart(&mut self) {
        for node in &mut self.nodes {
            node.restart();
        }
        self.wait_ok();
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// Node `i`'s role as it says itself (`master` or `slave`), if it answers.
    pub fn role(&self, i: usize) -> Option<String> {
        let info = cli(self.nodes[i].port(), &["INFO", "replication"])?;
        info_field(&info, "role")
    }

    /// Node `i`'s cluster node id.
    pub fn node_id(&self, i: usize) -> String {
        cli(self.nodes[i].port(), &["CLUSTER", "MYID"])
            .map(|s| s.trim().to_owned())
            .expect("CLUSTER MYID")
    }

    /// The indices of the nodes that are masters now.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.role(i).as_deref() == Some("master"))
            .collect()
    }

    /// Whether node `i` (alive) sees the cluster `ok` with every slot served
    /// (`cluster_state:ok`, `cluster_slots_ok:16384`) and no failing node holding slots:
    /// after a failover, the replica has been promoted.
    pub fn healthy_from(&self, i: usize) -> bool {
        let Some(info) = cli(self.nodes[i].port(), &["CLUSTER", "INFO"]) else {
            return false;
        };
        let ok = info_field(&info, "cluster_state").as_deref() == Some("ok")
            && info_field(&info, "cluster_slots_ok").as_deref() == Some("16384");
        ok && cli(self.nodes[i].port(), &["CLUSTER", "NODES"]).is_some_and(|nodes| {
            nodes.lines().all(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() <= 8 || !fields[2].contains("fail")
            })
        })
    }

    /// Whether node `i` (alive) sees the node `failed` (an id) marked `fail`, holding no
    /// slots, and the cluster [healthy](Self::healthy_from): its replica has taken over.
    pub fn failed_over_from(&self, i: usize, failed: &str) -> bool {
        let replaced = cli(self.nodes[i].port(), &["CLUSTER", "NODES"]).is_some_and(|nodes| {
            nodes.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() == 8
                    && fields[0] == failed
                    && fields[2].split(',').any(|flag| flag == "fail")
            })
        });
        replaced && self.healthy_from(i)
    }

    /// Runs `redis-cli -p <node i's port> args...` and returns its output (`None` when it
    /// fails, e.g. the node is down).
    pub fn cli(&self, i: usize, args: &[&str]) -> Option<String> {
        cli(self.nodes[i].port(), args)
    }
}
