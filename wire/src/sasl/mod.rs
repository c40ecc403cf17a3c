//! SASL authentication of a connection (KIP-43, KIP-152): SaslHandshake v1 names the
//! mechanism, then SaslAuthenticate v1 requests carry the mechanism's messages until it is
//! done. On a new connection it runs on the raw stream after TLS and before ApiVersions
//! ([`RawIo`]), so nothing else is on the connection yet; re-authentication (KIP-368) runs
//! the same exchange as requests on the live connection (`conn`'s reauthentication, through
//! [`SaslIo`]).
//!
//! - An unknown mechanism is [`Error::UnsupportedSaslMechanism`] with the broker's list.
//! - Wrong credentials, a server that cannot prove it knows the SCRAM credential, or a token
//!   callback that fails are [`Error::Authentication`]; neither is retried.
//! - Frames read during the exchange are limited to [`MAX_SASL_FRAME`] (Kafka's
//!   `sasl.server.max.receive.size`): a hostile broker cannot make us allocate more.
//!
//! - [`authenticate`] returns the session lifetime the broker granted (SaslAuthenticate v1's
//!   `session_lifetime_ms`, KIP-368); the connection re-authenticates before it ends.

pub mod oauthbearer;
pub mod plain;
pub mod scram;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use crate::error::{Error, ErrorCode};
use crate::protocol::{self, ProtocolError};
use crate::security::{SaslMechanism, SecurityConfig};
use scram::{ScramClient, ScramHash};

/// Largest frame accepted during the SASL exchange (Kafka's broker-side default).
pub const MAX_SASL_FRAME: usize = 512 * 1024;

/// SaslHandshake version: v1 means "SaslAuthenticate requests follow" (Kafka 1.0+).
pub(crate) const HANDSHAKE_VERSION: i16 = 1;
/// SaslAuthenticate version: v1 adds the session lifetime (Kafka 2.2+).
pub(crate) const AUTHENTICATE_VERSION: i16 = 1;
/// More round trips than any mechanism here needs: a broker cannot keep us talking.
const MAX_ROUNDS: usize = 4;

/// Where the SASL requests of one exchange go: the raw stream of a new connection
/// ([`RawIo`]) or a live, shared connection (re-authentication).
pub(crate) trait SaslIo: Send {
    /// Sends SaslHandshake (v1) and returns its response.
    fn handshake<'a>(
        &'a mut self,
        req: &'a SaslHandshakeRequest,
    ) -> BoxFuture<'a, Result<SaslHandshakeResponse, Error>>;
    /// Sends SaslAuthenticate (v1) and returns its response.
    fn authenticate<'a>(
        &'a mut self,
        req: &'a SaslAuthenticateRequest,
    ) -> BoxFuture<'a, Result<SaslAuthenticateResponse, Error>>;
}

/// The raw stream of a new connection: correlation ids from 0, frames limited to
/// [`MAX_SASL_FRAME`].
pub(crate) struct RawIo<'a, R, W> {
    pub(crate) addr: &'a str,
    pub(crate) client_id: Option<&'a str>,
    pub(crate) rd: &'a mut R,
    pub(crate) wr: &'a mut W,
    pub(crate) next_correlation_id: i32,
}

impl<R, W> RawIo<'_, R, W> {
    fn correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }
}

impl<R, W> SaslIo for RawIo<'_, R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    fn handshake<'a>(
        &'a mut self,
        req: &'a SaslHandshakeRequest,
    ) -> BoxFuture<'a, Result<SaslHandshakeResponse, Error>> {
        let cid = self.correlation_id();
        Box::pin(exchange(
            self.addr,
            (&mut *self.rd, &mut *self.wr),
            ApiKey::SaslHandshake,
            HANDSHAKE_VERSION,
            cid,
            self.client_id,
            req,
            MAX_SASL_FRAME,
        ))
    }

    fn authenticate<'a>(
        &'a mut self,
        req: &'a SaslAuthenticateRequest,
    ) -> BoxFuture<'a, Result<SaslAuthenticateResponse, Error>> {
        let cid = self.correlation_id();
        Box::pin(exchange(
            self.addr,
            (&mut *self.rd, &mut *self.wr),
            ApiKey::SaslAuthenticate,
            AUTHENTICATE_VERSION,
            cid,
            self.client_id,
            req,
            MAX_SASL_FRAME,
        ))
    }
}

/// One request/response on the raw stream, before the connection is shared.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn exchange<Req, Resp, R, W>(
    addr: &str,
    io: (&mut R, &mut W),
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &Req,
    max_frame: usize,
) -> Result<Resp, Error>
where
    Req: Encodable + HeaderVersion + Sync,
    Resp: Decodable + HeaderVersion,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let (rd, wr) = io;
    let mut buf = BytesMut::new();
    protocol::encode_request(api, version, correlation_id, client_id, body, &mut buf)?;
    wr.write_all(&buf)
        .await
        .map_err(|e| Error::setup_io(addr, e))?;
    wr.flush().await.map_err(|e| Error::setup_io(addr, e))?;
    let len = rd.read_i32().await.map_err(|e| Error::setup_io(addr, e))?;
    let len = protocol::check_frame_len(len, max_frame)?;
    let mut frame = BytesMut::zeroed(len);
    rd.read_exact(&mut frame)
        .await
        .map_err(|e| Error::setup_io(addr, e))?;
    let (cid, resp) = protocol::decode_response::<Resp>(api, version, frame.freeze())?;
    if cid != correlation_id {
        return Err(Error::Protocol(ProtocolError::Decode {
            what: "SASL response",
            message: format!("correlation id {cid}, expected {correlation_id}"),
        }));
    }
    Ok(resp)
}

/// The client side of one mechanism.
enum Exchange {
    Plain,
    Scram(ScramClient),
    OAuthBearer,
}

/// Authenticates the connection to `addr` through `io`. Returns the session lifetime the
/// broker granted (0 = none). OAUTHBEARER asks the token callback for a token every time, so
/// a re-authentication presents a fresh one.
pub(crate) async fn authenticate<I: SaslIo>(
    addr: &str,
    io: &mut I,
    sec: &SecurityConfig,
) -> Result<i64, Error> {
    let mechanism = sec.mechanism.ok_or_else(|| {
        Error::Config("sasl.mechanism is required with a SASL security.protocol".to_owned())
    })?;
    let auth_err = |reason: String| Error::Authentication {
        broker: addr.to_owned(),
        mechanism: mechanism.name(),
        reason,
    };
    let handshake = io
        .handshake(
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism.name())),
        )
        .await?;
    match handshake.error_code {
        0 => {}
        ErrorCode::UNSUPPORTED_SASL_MECHANISM => {
            return Err(Error::UnsupportedSaslMechanism {
                broker: addr.to_owned(),
                mechanism: mechanism.name(),
                offered: handshake
                    .mechanisms
                    .iter()
                    .map(|m| m.as_str().to_owned())
                    .collect(),
            })
        }
        code => {
            return Err(auth_err(format!(
                "SaslHandshake answered {}",
                crate::error::lookup(code).name
            )))
        }
    }

    let password = || sec.password.as_ref().map(|p| p.expose()).unwrap_or("");
    let username = sec.username.as_deref().unwrap_or("");
    let (mut state, first) = match mechanism {
        SaslMechanism::Plain => (Exchange::Plain, plain::client_message(username, password())),
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
            let hash = if mechanism == SaslMechanism::ScramSha256 {
                ScramHash::Sha256
            } else {
                ScramHash::Sha512
            };
            let client = ScramClient::new(hash, username, &nonce()?);
            let first = client.client_first();
            (Exchange::Scram(client), first)
        }
        SaslMechanism::OAuthBearer => {
            let callback = sec
                .token_callback
                .as_ref()
                .ok_or_else(|| auth_err("no token callback".to_owned()))?;
            let token = (callback.0)()
                .await
                .map_err(|e| auth_err(format!("the token callback failed: {e}")))?;
            (
                Exchange::OAuthBearer,
                oauthbearer::client_message(token.value.expose(), &token.extensions),
            )
        }
    };

    let mut outgoing = first;
    for _ in 0..MAX_ROUNDS {
        let resp = io
            .authenticate(
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(outgoing)),
            )
            .await?;
        if resp.error_code != 0 {
            let name = crate::error::lookup(resp.error_code).name;
            let message = resp
                .error_message
                .as_ref()
                .map(|m| format!(": {}", m.as_str()))
                .unwrap_or_default();
            return Err(auth_err(format!("{name}{message}")));
        }
        let next = match &mut state {
            Exchange::Plain | Exchange::OAuthBearer => None,
            Exchange::Scram(client) => {
                if client.awaiting_server_final() {
                    client
                        .verify_server_final(&resp.auth_bytes)
                        .map_err(|e| auth_err(e.0))?;
                    None
                } else {
                    Some(
                        client
                            .client_final(&resp.auth_bytes, password())
                            .map_err(|e| auth_err(e.0))?,
                    )
                }
            }
        };
        match next {
            Some(msg) => outgoing = msg,
            None => {
                debug!(
                    broker = addr,
                    mechanism = mechanism.name(),
                    session_lifetime_ms = resp.session_lifetime_ms,
                    "authenticated"
                );
                return Ok(resp.session_lifetime_ms);
            }
        }
    }
    Err(auth_err("the exchange did not finish".to_owned()))
}

/// A fresh SCRAM nonce: 24 random bytes, as printable characters.
fn nonce() -> Result<String, Error> {
    use base64::Engine;
    let mut raw = [0u8; 24];
    crate::tls::random_bytes(&mut raw)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}
