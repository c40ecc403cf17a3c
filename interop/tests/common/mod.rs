//! Shared helpers of the interop suites: where the peers are, running a peer with a timeout,
//! unique names, and the broker the peers talk to.
//!
//! Environment (all optional; `.ci/test-all` sets them):
//! - `KP_KAFKA_CLIENT_LIBS`: folder with the kafka-clients jars
//!   (default `<repo>/.ci/cache/kafka-client-libs`).
//! - `KP_PYTHON`: a Python with confluent-kafka and kafka-python
//!   (default `<repo>/.ci/cache/venv/bin/python`).
//! - `KP_KCAT`: the kcat binary (default `kcat` on `PATH`).
//! - `KP_PEERS_BOOTSTRAP`: run the peers against this broker instead of an in-process
//!   `TestServer` (used by `.ci/test-all` to check the expectations against Apache Kafka).
#![allow(dead_code, unreachable_pub)]

use std::error::Error as StdError;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_persistence_testserver::TestServer;

pub mod cluster;

/// Test result: any error fails the test with its message.
pub type TestResult = Result<(), Box<dyn StdError + Send + Sync>>;

/// A boxed error from a message.
pub fn fail(msg: impl Into<String>) -> Box<dyn StdError + Send + Sync> {
    msg.into().into()
}

/// The repository root (the workspace folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A topic or group name no other test or run uses (an external broker is shared).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a finished peer process printed.
#[derive(Debug)]
pub struct PeerOutput {
    /// Exit code (None: killed by a signal or by the timeout).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// True when the timeout killed it.
    pub timed_out: bool,
}

impl PeerOutput {
    /// Fails unless the peer exited with 0.
    pub fn ensure_success(&self, what: &str) -> Result<(), Box<dyn StdError + Send + Sync>> {
        if self.code == Some(0) && !self.timed_out {
            Ok(())
        } else {
            Err(fail(format!(
                "{what} failed (exit {:?}, timed out: {})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.code, self.timed_out, self.stdout, self.stderr
            )))
        }
    }

    /// Lines of stdout that start with one of `tags` (followed by a space or end of line).
    pub fn tagged_lines(&self, tags: &[&str]) -> Vec<String> {
        self.stdout
            .lines()
            .filter(|l| {
                tags.iter().any(|t| {
                    l.strip_prefix(t)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
                })
            })
            .map(str::to_string)
            .collect()
    }
}

/// Runs `cmd` to completion in a blocking thread, with `stdin` fed to it, killing it after
/// `timeout`.
pub async fn run_peer(
    mut cmd: Command,
    stdin: Option<String>,
    timeout: Duration,
) -> Result<PeerOutput, Box<dyn StdError + Send + Sync>> {
    let shown = format!("{cmd:?}");
    let joined = tokio::task::spawn_blocking(move || -> std::io::Result<PeerOutput> {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(input.as_bytes())?;
            // Dropping the pipe closes it: the peer sees end of input.
        }
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(PeerOutput {
            code: status.code(),
            stdout: out_reader.join().unwrap_or_default(),
            stderr: err_reader.join().unwrap_or_default(),
            timed_out,
        })
    })
    .await
    .map_err(|e| fail(format!("peer thread of {shown} failed: {e}")))?;
    joined.map_err(|e| {
        fail(format!(
            "could not run {shown}: {e} (run .ci/test-all to install the peers)"
        ))
    })
}

/// The broker the peers talk to: an in-process `TestServer`, or `KP_PEERS_BOOTSTRAP`.
#[derive(Debug)]
pub struct PeerBroker {
    /// The in-process broker (None when external).
    pub server: Option<TestServer>,
    /// Its bootstrap servers.
    pub bootstrap: String,
}

impl PeerBroker {
    /// Starts a one-node `TestServer` unless `KP_PEERS_BOOTSTRAP` names a broker.
    pub async fn start() -> Result<PeerBroker, Box<dyn StdError + Send + Sync>> {
        match std::env::var("KP_PEERS_BOOTSTRAP") {
            Ok(b) if !b.trim().is_empty() => Ok(PeerBroker {
                server: None,
                bootstrap: b.trim().to_string(),
            }),
            _ => {
                let server = TestServer::start().await?;
                let bootstrap = server.bootstrap_servers();
                Ok(PeerBroker {
                    server: Some(server),
                    bootstrap,
                })
            }
        }
    }

    /// Checks the in-process broker's high watermark of `topic`-`partition` (skipped for an
    /// external broker, whose peers' own ListOffsets already tell).
    pub async fn expect_high_watermark(
        &self,
        topic: &str,
        partition: i32,
        expected: i64,
    ) -> TestResult {
        if let Some(server) = &self.server {
            let info = server
                .partition_info(topic, partition)
                .await
                .ok_or_else(|| fail(format!("testserver has no partition {topic}-{partition}")))?;
            if info.high_watermark != expected {
                return Err(fail(format!(
                    "testserver high watermark of {topic}-{partition}: {} != {expected}",
                    info.high_watermark
                )));
            }
        }
        Ok(())
    }

    /// Stops the in-process broker.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// The Python interpreter with confluent-kafka and kafka-python.
pub fn python() -> PathBuf {
    env_path("KP_PYTHON", repo_root().join(".ci/cache/venv/bin/python"))
}

/// A peer script under `interop/peers/`.
pub fn peer_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(rel)
}

/// The kcat binary.
pub fn kcat() -> PathBuf {
    env_path("KP_KCAT", PathBuf::from("kcat"))
}

/// The folder of the kafka-clients jars.
pub fn kafka_client_libs() -> PathBuf {
    env_path(
        "KP_KAFKA_CLIENT_LIBS",
        repo_root().join(".ci/cache/kafka-client-libs"),
    )
}

/// Compiles `peers/java/InteropClient.java` once per test binary; returns the classpath to
/// run it with.
pub async fn java_classpath() -> Result<String, Box<dyn StdError + Send + Sync>> {
    static COMPILED: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    let slot = COMPILED.get_or_init(|| Mutex::new(None));
    if let Some(cp) = slot.lock().map_err(|_| fail("poisoned"))?.clone() {
        return Ok(cp);
    }
    let libs = kafka_client_libs();
    if !libs.join(".").is_dir() {
        return Err(fail(format!(
            "no kafka-clients jars in {} (run .ci/test-all or set KP_KAFKA_CLIENT_LIBS)",
            libs.display()
        )));
    }
    let out_dir = std::env::temp_dir().join(unique("kp-interop-java"));
    std::fs::create_dir_all(&out_dir)?;
    let jars = format!("{}/*", libs.display());
    let mut javac = Command::new("javac");
    javac
        .arg("-d")
        .arg(&out_dir)
        .arg("-cp")
        .arg(&jars)
        .arg(peer_file("java/InteropClient.java"))
        .arg(peer_file("java/GroupMember.java"));
    run_peer(javac, None, Duration::from_secs(180))
        .await?
        .ensure_success("javac InteropClient.java GroupMember.java")?;
    let cp = format!("{}:{jars}", out_dir.display());
    *slot.lock().map_err(|_| fail("poisoned"))? = Some(cp.clone());
    Ok(cp)
}

/// Fails with both listings when `got` differs from `want`.
pub fn assert_lines(what: &str, got: &[String], want: &[String], out: &PeerOutput) -> TestResult {
    if got == want {
        return Ok(());
    }
    Err(fail(format!(
        "{what}: lines differ\n--- want ---\n{}\n--- got ---\n{}\n--- peer stderr ---\n{}",
        want.join("\n"),
        got.join("\n"),
        out.stderr
    )))
}
