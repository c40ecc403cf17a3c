//! SaslAuthenticate (key 36), versions 0-2.
//!
//! Behaviour: PLAIN (one message), SCRAM-SHA-256/512 (client-first, client-final; the server
//! proves its knowledge of the credential in server-final) and OAUTHBEARER (a token from the
//! builder's list). The parsers are the client's own (`wire::sasl`). A failure answers
//! SASL_AUTHENTICATION_FAILED with "Authentication failed..." and the connection loop closes
//! the connection, as Kafka does. Unknown SCRAM users run the exchange with a fake credential,
//! so a client cannot tell them from a wrong password.
//!
//! Re-authentication (KIP-368): with `connections_max_reauth`, a success reports the
//! session lifetime (`session_lifetime_ms`, v1+) and starts the session's clock; a
//! re-authentication that names another principal fails and closes the connection.
//!
//! Skipped: SCRAM extensions (delegation tokens), OAUTHBEARER token validation beyond "is in
//! the list", lifetimes bounded by a token's expiry.

use bytes::Bytes;
use kafka_persistence_wire::sasl::scram::{
    self, ClientFinal, ClientFirst, ScramCredential, ServerFinal, ServerFirst,
};
use kafka_persistence_wire::sasl::{oauthbearer, plain};
use kafka_persistence_wire::SaslMechanism;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::sb;
use crate::auth::{AuthSettings, Credential, SaslState, Session};
use kafka_persistence_wire::ErrorCode;

/// Whether the connection must close after the answer.
pub(crate) type Close = bool;

fn failed(message: &str) -> (SaslAuthenticateResponse, Close) {
    let mut r = SaslAuthenticateResponse::default();
    r.error_code = ErrorCode::SASL_AUTHENTICATION_FAILED;
    r.error_message = Some(sb(message));
    (r, true)
}

fn ok(bytes: Vec<u8>) -> (SaslAuthenticateResponse, Close) {
    let mut r = SaslAuthenticateResponse::default();
    r.auth_bytes = Bytes::from(bytes);
    (r, false)
}

/// A server nonce: 18 random bytes as base64.
fn server_nonce() -> String {
    use base64::Engine;
    let mut raw = [0u8; 18];
    if kafka_persistence_wire::tls::crypto_provider()
        .secure_random
        .fill(&mut raw)
        .is_err()
    {
        // Fall back to something unique per connection; this is a test broker.
        raw[..8].copy_from_slice(&crate::cluster::now_ms().to_be_bytes());
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
}

/// Answers one SaslAuthenticate and advances `session`; on success starts the session's
/// lifetime (with `connections_max_reauth`).
pub(crate) fn handle(
    settings: &AuthSettings,
    session: &mut Session,
    req: &SaslAuthenticateRequest,
) -> (SaslAuthenticateResponse, Close) {
    let mechanism = match &session.sasl {
        SaslState::Authenticate(m) => Some(*m),
        SaslState::ScramFinal { hash, .. } => Some(match hash {
            scram::ScramHash::Sha256 => SaslMechanism::ScramSha256,
            _ => SaslMechanism::ScramSha512,
        }),
        _ => None,
    };
    let (mut r, close) = exchange(settings, session, req);
    if close || !session.authenticated() {
        return (r, close);
    }
    // The exchange is done.
    if let Some(before) = session.reauth_of.take() {
        if before != session.principal {
            tracing::debug!(%before, after = %session.principal, reason = "principal changed", "refusing re-authentication");
            return failed("Authentication failed: the principal changed during re-authentication");
        }
    }
    session.mechanism = mechanism;
    if let Some(lifetime) = settings.max_reauth {
        session.expires = Some(std::time::Instant::now() + lifetime);
        r.session_lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    }
    (r, false)
}

/// One step of the mechanism's exchange.
fn exchange(
    settings: &AuthSettings,
    session: &mut Session,
    req: &SaslAuthenticateRequest,
) -> (SaslAuthenticateResponse, Close) {
    let state = std::mem::replace(&mut session.sasl, SaslState::Handshake);
    match state {
        SaslState::Authenticate(SaslMechanism::Plain) => {
            let Ok(m) = plain::parse(&req.auth_bytes) else {
                return failed("Authentication failed: invalid PLAIN message");
            };
            let good = matches!(
                settings.users.get(&(SaslMechanism::Plain, m.username.clone())),
                Some(Credential::Plain(p)) if *p == m.password
            ) && (m.authzid.is_empty() || m.authzid == m.username);
            if !good {
                return failed("Authentication failed: Invalid username or password");
            }
            session.principal = format!("User:{}", m.username);
            session.sasl = SaslState::Done;
            ok(Vec::new())
        }
        SaslState::Authenticate(SaslMechanism::OAuthBearer) => {
            let principal = oauthbearer::parse(&req.auth_bytes)
                .ok()
                .and_then(|m| settings.tokens.get(&m.token).cloned());
            let Some(principal) = principal else {
                return failed("Authentication failed: invalid token");
            };
            session.principal = format!("User:{principal}");
            session.sasl = SaslState::Done;
            ok(Vec::new())
        }
        SaslState::Authenticate(mechanism) => {
            let hash = match mechanism {
                SaslMechanism::ScramSha256 => scram::ScramHash::Sha256,
                _ => scram::ScramHash::Sha512,
            };
            let Ok(first) = ClientFirst::parse(&req.auth_bytes) else {
                return failed("Authentication failed: invalid SCRAM client-first message");
            };
            let credential = match settings.users.get(&(mechanism, first.username.clone())) {
                Some(Credential::Scram(_, c)) => Some(c.clone()),
                _ => None,
            };
            // Unknown user: a fake credential keeps the exchange indistinguishable.
            let shown = credential
                .clone()
                .unwrap_or_else(|| ScramCredential::new(hash, "", b"unknown-user-salt", 4096));
            let nonce = format!("{}{}", first.nonce, server_nonce());
            let sf = ServerFirst::new(&nonce, &shown.salt, shown.iterations);
            session.sasl = SaslState::ScramFinal {
                hash,
                user: first.username,
                credential,
                client_first_bare: first.bare,
                server_first: sf.raw.clone(),
                nonce,
            };
            ok(sf.raw.into_bytes())
        }
        SaslState::ScramFinal {
            hash,
            user,
            credential,
            client_first_bare,
            server_first,
            nonce,
        } => {
            let Ok(fin) = ClientFinal::parse(&req.auth_bytes) else {
                return failed("Authentication failed: invalid SCRAM client-final message");
            };
            if fin.nonce != nonce {
                tracing::debug!(expected = %nonce, got = %fin.nonce, reason = "SCRAM nonce mismatch", "refusing authentication");
                return failed("Authentication failed: nonce mismatch");
            }
            let auth = scram::auth_message(&client_first_bare, &server_first, &fin.without_proof);
            let verified = credential
                .as_ref()
                .and_then(|c| scram::verify_client_proof(hash, c, &auth, &fin.proof));
            let Some(signature) = verified else {
                return failed("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM");
            };
            session.principal = format!("User:{user}");
            session.sasl = SaslState::Done;
            ok(ServerFinal::Verifier(signature).to_bytes())
        }
        SaslState::Handshake | SaslState::Done => {
            let mut r = SaslAuthenticateResponse::default();
            r.error_code = ErrorCode::ILLEGAL_SASL_STATE;
            r.error_message = Some(sb("SaslAuthenticate without a SaslHandshake"));
            (r, true)
        }
    }
}
