//! SaslHandshake (key 17), versions 0-1.
//!
//! Behaviour: on a listener with SASL users, names the mechanism for the SaslAuthenticate
//! requests that follow; a mechanism without users is UNSUPPORTED_SASL_MECHANISM with the
//! enabled list. A handshake on a listener without SASL, or a second one, is
//! ILLEGAL_SASL_STATE, except on an authenticated connection of a server with
//! `connections_max_reauth` (KIP-368): that starts a re-authentication, which must use the
//! connection's mechanism. Handled by the connection loop, which holds the per-connection
//! state.
//!
//! Skipped: v0 (the raw SASL tokens without SaslAuthenticate framing; the answer is the same,
//! but a v0 client then gets its connection closed), GSSAPI.

use kafka_persistence_wire::SaslMechanism;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use super::sb;
use crate::auth::{AuthSettings, SaslState, Session};
use kafka_persistence_wire::ErrorCode;

/// Answers one SaslHandshake; moves `session` on to SaslAuthenticate when it succeeds.
pub(crate) fn handle(
    settings: &AuthSettings,
    session: &mut Session,
    req: &SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mut r = SaslHandshakeResponse::default();
    let enabled = settings.mechanisms();
    r.mechanisms = enabled.iter().map(|m| sb(m.name())).collect();
    let reauth = matches!(session.sasl, SaslState::Done)
        && settings.max_reauth.is_some()
        && session.mechanism.is_some();
    if !matches!(session.sasl, SaslState::Handshake) && !reauth {
        r.error_code = ErrorCode::ILLEGAL_SASL_STATE;
        return r;
    }
    match req.mechanism.parse::<SaslMechanism>() {
        Ok(m) if reauth && session.mechanism != Some(m) => {
            tracing::debug!(mechanism = %m, reason = "mechanism changed", "refusing re-authentication");
            r.error_code = ErrorCode::ILLEGAL_SASL_STATE;
        }
        Ok(m) if enabled.contains(&m) => {
            if reauth {
                session.reauth_of = Some(session.principal.clone());
            }
            session.sasl = SaslState::Authenticate(m);
        }
        _ => r.error_code = ErrorCode::UNSUPPORTED_SASL_MECHANISM,
    }
    r
}
