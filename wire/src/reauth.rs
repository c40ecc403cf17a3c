//! KIP-368 re-authentication of a live connection.
//!
//! A broker with `connections.max.reauth.ms` grants each SASL session a lifetime
//! (SaslAuthenticate v1's `session_lifetime_ms`) and closes a connection that is used after
//! its session expired without re-authenticating. [`run`] is one task per such connection:
//! at a random point in 85-95% of the lifetime (the Java client's window, so that the
//! connections of many clients do not re-authenticate at the same moment) it holds back new
//! requests ([`Connection::hold`]), runs SaslHandshake and SaslAuthenticate again as
//! requests on the connection (the same mechanism and credentials; OAUTHBEARER asks its
//! callback for a fresh token), then sends what was held back and waits for the next
//! lifetime. Requests already in flight are answered before the handshake and are not
//! touched.
//!
//! A failed re-authentication (wrong credentials by now, a token callback error, a timeout)
//! fails the connection with that error; the pool opens a new connection on next use, which
//! reports the failure again if it persists.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::conn::{ConnConfig, Connection};
use crate::error::Error;
use crate::sasl::{self, SaslIo, AUTHENTICATE_VERSION, HANDSHAKE_VERSION};

/// The SASL exchange as requests on a live connection, past its hold.
struct ConnIo<'a> {
    conn: &'a Connection,
    timeout: Duration,
}

impl SaslIo for ConnIo<'_> {
    fn handshake<'a>(
        &'a mut self,
        req: &'a SaslHandshakeRequest,
    ) -> BoxFuture<'a, Result<SaslHandshakeResponse, Error>> {
        Box::pin(self.conn.request_unheld(
            ApiKey::SaslHandshake,
            HANDSHAKE_VERSION,
            req,
            self.timeout,
        ))
    }

    fn authenticate<'a>(
        &'a mut self,
        req: &'a SaslAuthenticateRequest,
    ) -> BoxFuture<'a, Result<SaslAuthenticateResponse, Error>> {
        Box::pin(self.conn.request_unheld(
            ApiKey::SaslAuthenticate,
            AUTHENTICATE_VERSION,
            req,
            self.timeout,
        ))
    }
}

/// When to re-authenticate a session of `lifetime` that began at `start`: at `fraction`
/// (in 0.85..=0.95) of it.
pub(crate) fn due(start: Instant, lifetime: Duration, fraction: f64) -> Instant {
    start + lifetime.mul_f64(fraction.clamp(0.85, 0.95))
}

/// A random fraction in 0.85..=0.95.
fn random_fraction() -> f64 {
    let mut b = [0u8; 2];
    if crate::tls::random_bytes(&mut b).is_err() {
        return 0.85; // the earliest point is always safe
    }
    0.85 + f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX) * 0.10
}

/// Re-authenticates the connection before each session of `lifetime` ends, until the
/// connection is gone, fails, or the broker stops granting lifetimes.
pub(crate) async fn run(conn: Weak<Connection>, mut lifetime: Duration, cfg: ConnConfig) {
    // The session began before the broker answered; counting from here errs on the early side.
    let mut start = Instant::now();
    loop {
        tokio::time::sleep_until(due(start, lifetime, random_fraction())).await;
        let Some(c) = conn.upgrade() else { return };
        if c.is_failed() {
            return;
        }
        start = Instant::now();
        c.hold();
        let mut io = ConnIo {
            conn: &c,
            timeout: cfg.request_timeout,
        };
        let exchange = sasl::authenticate(c.addr(), &mut io, &cfg.security.config);
        let outcome = match tokio::time::timeout(cfg.request_timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!("SASL re-authentication with {}", c.addr()),
                after: cfg.request_timeout,
            }),
        };
        match outcome {
            Ok(ms) => {
                c.release();
                cfg.stats.reauthentications.fetch_add(1, Ordering::Relaxed);
                debug!(
                    broker = c.addr(),
                    session_lifetime_ms = ms,
                    "re-authenticated"
                );
                match u64::try_from(ms).ok().filter(|&ms| ms > 0) {
                    Some(ms) => lifetime = Duration::from_millis(ms),
                    None => return,
                }
            }
            Err(e) => {
                warn!(broker = c.addr(), error = %e, "re-authentication failed; failing connection");
                c.fail(e);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_is_within_85_to_95_percent() {
        let start = Instant::now();
        let l = Duration::from_secs(100);
        assert_eq!(due(start, l, 0.85), start + Duration::from_secs(85));
        assert_eq!(due(start, l, 0.95), start + Duration::from_secs(95));
        assert_eq!(due(start, l, 0.10), start + Duration::from_secs(85));
        assert_eq!(due(start, l, 2.0), start + Duration::from_secs(95));
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.85..=0.95).contains(&f), "{f}");
        }
    }
}
