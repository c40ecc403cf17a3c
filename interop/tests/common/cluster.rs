//! The 3-node Apache Kafka cluster of `.ci/test-all` step c (`.ci/kafka/kafka-cluster start 3
//! DIR`): where it is, and killing (SIGKILL) and restarting its nodes.
//!
//! Environment (set by step c):
//! - `KP_KAFKA_CLUSTER_BOOTSTRAP`: "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
//! - `KP_KAFKA_CLUSTER_NODES`: "1:P1:PIDFILE1,2:P2:PIDFILE2,3:P3:PIDFILE3" (node id, broker
//!   port, file holding the pid of that node's JVM)
//! - `KP_KAFKA_CLUSTER_DIR`: the cluster's DIR, to start a killed node again
//!   (`kafka-cluster restart-node DIR N`)

use std::collections::HashMap;
use std::path::PathBuf;

use super::{fail, repo_root, TestResult};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The cluster and its nodes.
pub struct Cluster {
    pub bootstrap: String,
    pub dir: PathBuf,
    /// Node id -> the file holding its JVM's pid.
    pub nodes: HashMap<i32, PathBuf>,
}

impl Cluster {
    /// The cluster step c started (see the module docs).
    pub fn from_env() -> Result<Cluster, BoxError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                fail(format!(
                    "{name} is not set: run .ci/test-all (step c), see interop/README.md"
                ))
            })
        };
        let bootstrap = var("KP_KAFKA_CLUSTER_BOOTSTRAP")?;
        let dir = PathBuf::from(var("KP_KAFKA_CLUSTER_DIR")?);
        let nodes_var = var("KP_KAFKA_CLUSTER_NODES")?;
        let mut nodes = HashMap::new();
        for entry in nodes_var.split(',').filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let (Some(id), Some(_port), Some(pid_file)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(fail(format!("bad KP_KAFKA_CLUSTER_NODES entry '{entry}'")));
            };
            let id: i32 = id
                .parse()
                .map_err(|e| fail(format!("bad node id in '{entry}': {e}")))?;
            nodes.insert(id, PathBuf::from(pid_file));
        }
        if nodes.len() != 3 {
            return Err(fail(format!(
                "need 3 nodes in KP_KAFKA_CLUSTER_NODES, got '{nodes_var}'"
            )));
        }
        Ok(Cluster {
            bootstrap,
            dir,
            nodes,
        })
    }

    fn pid(&self, node: i32) -> Result<Option<String>, BoxError> {
        let file = self
            .nodes
            .get(&node)
            .ok_or_else(|| fail(format!("node {node} is not in the cluster")))?;
        let Ok(pid) = std::fs::read_to_string(file) else {
            return Ok(None);
        };
        let pid = pid.trim().to_string();
        if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
            return Err(fail(format!("bad pid '{pid}' in {}", file.display())));
        }
        Ok(Some(pid))
    }

    /// Whether node `node`'s JVM is alive.
    pub fn running(&self, node: i32) -> Result<bool, BoxError> {
        let Some(pid) = self.pid(node)? else {
            return Ok(false);
        };
        Ok(std::process::Command::new("kill")
            .args(["-0", &pid])
            .stderr(std::process::Stdio::null())
            .status()?
            .success())
    }

    /// Kills a node's JVM (SIGKILL: a crash, no controlled shutdown).
    pub fn kill(&self, node: i32) -> TestResult {
        let pid = self
            .pid(node)?
            .ok_or_else(|| fail(format!("node {node} has no pid file")))?;
        let status = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()?;
        if !status.success() {
            return Err(fail(format!("kill -9 {pid} (node {node}) failed")));
        }
        Ok(())
    }

    /// Starts a stopped node again on its data and waits until it serves.
    pub fn restart(&self, node: i32) -> TestResult {
        let script = repo_root().join(".ci/kafka/kafka-cluster");
        let out = std::process::Command::new(&script)
            .arg("restart-node")
            .arg(&self.dir)
            .arg(node.to_string())
            .output()?;
        if !out.status.success() {
            return Err(fail(format!(
                "{} restart-node {} {node}: {}{}",
                script.display(),
                self.dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Starts every node that is not running (an earlier test of step c kills one).
    pub fn all_up(&self) -> TestResult {
        let mut ids: Vec<i32> = self.nodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if !self.running(id)? {
                eprintln!("node {id} is not running: starting it again");
                self.restart(id)?;
            }
        }
        Ok(())
    }
}
