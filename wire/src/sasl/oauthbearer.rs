//! SASL OAUTHBEARER (RFC 7628) as Kafka speaks it (KIP-255, extensions KIP-342): the initial
//! client response `n,,\x01auth=Bearer <token>\x01[key=value\x01]*\x01`. On failure the
//! server answers with a JSON error; the client then sends `\x01` and the server fails the
//! exchange with SASL_AUTHENTICATION_FAILED.

use super::scram::ScramError;

const SEP: char = '\u{1}';

/// The initial client response for `token` with `extensions`.
pub fn client_message(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let mut s = format!("n,,{SEP}auth=Bearer {token}");
    for (k, v) in extensions {
        s.push(SEP);
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s.push(SEP);
    s.push(SEP);
    s.into_bytes()
}

/// A parsed initial client response (server side).
#[derive(PartialEq, Eq)]
pub struct OAuthBearerMessage {
    /// The bearer token.
    pub token: String,
    /// SASL extensions, in order.
    pub extensions: Vec<(String, String)>,
}

impl std::fmt::Debug for OAuthBearerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthBearerMessage")
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

fn refuse(why: &str) -> ScramError {
    ScramError(format!("malformed OAUTHBEARER message: {why}"))
}

/// Parses an initial client response.
pub fn parse(bytes: &[u8]) -> Result<OAuthBearerMessage, ScramError> {
    let s = std::str::from_utf8(bytes).map_err(|_| refuse("not UTF-8"))?;
    let Some(rest) = s.strip_prefix("n,") else {
        return Err(refuse("no gs2 header"));
    };
    let Some((authzid, rest)) = rest.split_once(',') else {
        return Err(refuse("no gs2 header"));
    };
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(refuse("bad authzid"));
    }
    let Some(body) = rest
        .strip_prefix(SEP)
        .and_then(|b| b.strip_suffix(SEP))
        .and_then(|b| b.strip_suffix(SEP))
    else {
        return Err(refuse("not framed by \\x01"));
    };
    let mut token = None;
    let mut extensions = Vec::new();
    for kv in body.split(SEP) {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(refuse("key without value"));
        };
        if k == "auth" {
            let t = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or_else(|| refuse("auth is not a Bearer token"))?;
            if t.is_empty() || token.is_some() {
                return Err(refuse("empty or repeated token"));
            }
            token = Some(t.to_owned());
        } else if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()) {
            extensions.push((k.to_owned(), v.to_owned()));
        } else {
            return Err(refuse("bad extension key"));
        }
    }
    match token {
        Some(token) => Ok(OAuthBearerMessage { token, extensions }),
        None => Err(refuse("no auth=Bearer")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kafka_format_round_trips() {
        assert_eq!(
            client_message("tok", &[]),
            b"n,,\x01auth=Bearer tok\x01\x01"
        );
        let ext = vec![("traceId".to_owned(), "42".to_owned())];
        let m = client_message("tok", &ext);
        assert_eq!(m, b"n,,\x01auth=Bearer tok\x01traceId=42\x01\x01");
        let p = parse(&m).unwrap();
        assert_eq!(p.token, "tok");
        assert_eq!(p.extensions, ext);
        assert!(!format!("{p:?}").contains("tok"));
        for bad in [
            &b"n,,auth=Bearer t"[..],
            b"n,,\x01auth=Basic t\x01\x01",
            b"\x01",
            b"",
        ] {
            assert!(parse(bad).is_err());
        }
    }
}
