//! SASL PLAIN (RFC 4616): one message, `authzid NUL authcid NUL password`.

use super::scram::ScramError;

/// The PLAIN message for `username` and `password` (no authorization id).
pub fn client_message(username: &str, password: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(username.len() + password.len() + 2);
    m.push(0);
    m.extend_from_slice(username.as_bytes());
    m.push(0);
    m.extend_from_slice(password.as_bytes());
    m
}

/// A parsed PLAIN message (server side).
#[derive(PartialEq, Eq)]
pub struct PlainMessage {
    /// The authorization id (empty: the same as `username`).
    pub authzid: String,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Parses a PLAIN message: exactly two NUL separators, UTF-8, non-empty user name.
pub fn parse(bytes: &[u8]) -> Result<PlainMessage, ScramError> {
    let s =
        std::str::from_utf8(bytes).map_err(|_| ScramError("PLAIN message is not UTF-8".into()))?;
    let mut parts = s.split('\0');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(authzid), Some(username), Some(password), None) if !username.is_empty() => {
            Ok(PlainMessage {
                authzid: authzid.to_owned(),
                username: username.to_owned(),
                password: password.to_owned(),
            })
        }
        _ => Err(ScramError(
            "PLAIN message must be authzid NUL user NUL password".into(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let m = parse(&client_message("alice", "pw")).unwrap();
        assert_eq!((m.username.as_str(), m.password.as_str()), ("alice", "pw"));
        assert!(!format!("{m:?}").contains("pw"));
        assert!(parse(b"\0\0pw").is_err());
        assert!(parse(b"a\0b").is_err());
        assert!(parse(b"a\0b\0c\0d").is_err());
        assert!(parse(b"\0a\0\xff").is_err());
    }
}
