//! Opening the byte stream of a connection: TCP, then TLS (`SSL`, `SASL_SSL`), then SASL
//! (`SASL_PLAINTEXT`, `SASL_SSL`), all within `socket.connection.setup.timeout.ms`. The
//! connection module runs ApiVersions on the result and shares it.
//!
//! Each stage has its own timeout message, so "never answers the TLS handshake" and "never
//! answers SaslHandshake" are told apart. The stream is handed on as two boxed halves: a TCP
//! stream splits without a lock, a TLS stream through `tokio::io::split`.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::Error;
use crate::security::SecurityConfig;
use crate::tls::TlsConnector;

/// The read half of a connection's stream.
pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection's stream.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// The security of a client's connections, prepared once (CA and keys parsed).
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    pub(crate) config: SecurityConfig,
    pub(crate) tls: Option<TlsConnector>,
}

impl Security {
    /// Reads and parses the `ssl.*` material; fails with [`Error::Config`] naming the file.
    pub(crate) fn prepare(config: &SecurityConfig) -> Result<Security, Error> {
        Ok(Security {
            tls: TlsConnector::new(config)?,
            config: config.clone(),
        })
    }
}

async fn stage<T>(
    deadline: Instant,
    budget: Duration,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            what: what(),
            after: budget,
        }),
    }
}

/// Connects to `addr` and runs TLS and SASL as configured, within `timeout` in all. Returns
/// the stream and the SASL session lifetime the broker granted (`None`: no SASL, or no
/// expiry).
pub(crate) async fn establish(
    addr: &str,
    client_id: Option<&str>,
    security: &Security,
    timeout: Duration,
) -> Result<(Reader, Writer, Option<Duration>), Error> {
    let deadline = Instant::now() + timeout;
    let tcp = stage(deadline, timeout, || format!("connect to {addr}"), async {
        TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io(addr, e))
    })
    .await?;
    tcp.set_nodelay(true).map_err(|e| Error::io(addr, e))?;
    let (mut rd, mut wr): (Reader, Writer) = match &security.tls {
        None => {
            let (r, w) = tcp.into_split();
            (Box::new(r), Box::new(w))
        }
        Some(tls) => {
            let stream = stage(
                deadline,
                timeout,
                || format!("TLS handshake with {addr}"),
                tls.connect(addr, tcp),
            )
            .await?;
            let (r, w) = tokio::io::split(stream);
            (Box::new(r), Box::new(w))
        }
    };
    let mut lifetime = None;
    if security.config.protocol.uses_sasl() {
        let mut io = crate::sasl::RawIo {
            addr,
            client_id,
            rd: &mut rd,
            wr: &mut wr,
            next_correlation_id: 0,
        };
        let ms = stage(
            deadline,
            timeout,
            || {
                format!(
                    "SASL {} authentication with {addr}",
                    security.config.mechanism.map(|m| m.name()).unwrap_or("")
                )
            },
            crate::sasl::authenticate(addr, &mut io, &security.config),
        )
        .await?;
        lifetime = u64::try_from(ms)
            .ok()
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
    }
    Ok((rd, wr, lifetime))
}
