//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka speaks them (KIP-84): no
//! channel binding (`n,,`), no SASLprep (Kafka uses the UTF-8 password as it is), at least
//! 4096 iterations.
//!
//! The message parsers and the key derivation are public so that the testserver's SCRAM
//! server and the fuzz targets use the same code as the client. Every parser takes bytes from
//! the network and returns a [`ScramError`], never panics, and allocates at most the size of
//! its input.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Fewest iterations accepted from a server (RFC 7677; Kafka's minimum).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most iterations accepted from a server (Kafka's maximum): a hostile server cannot make the
/// client spin on PBKDF2.
pub const MAX_ITERATIONS: u32 = 16384;

/// Why a SCRAM message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScramError(pub String);

fn err(msg: impl Into<String>) -> ScramError {
    ScramError(msg.into())
}

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
        match self {
            ScramHash::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            ScramHash::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with HMAC-H.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What a server stores for a user (RFC 5802 section 3): never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the credential of `password`.
    pub fn new(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> ScramCredential {
        let salted = hash.salted_password(password.as_bytes(), salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, ScramError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| err(format!("{what} is not UTF-8")))
}

/// Splits `s` into `k=v` attributes, in order.
fn attributes(s: &str) -> Result<Vec<(char, &str)>, ScramError> {
    s.split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &part[2..])),
                _ => Err(err(format!("malformed attribute {part:?}"))),
            }
        })
        .collect()
}

fn printable_nonce(n: &str) -> Result<(), ScramError> {
    if n.is_empty() || !n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
        return Err(err("nonce is empty or not printable ASCII"));
    }
    Ok(())
}

/// RFC 5802 `saslname`: `=` as `=3D`, `,` as `=2C`.
pub fn escape_username(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn unescape_username(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=3D") => out.push('='),
            Some("=2C") => out.push(','),
            _ => return Err(err("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The client-first message: `n,,n=user,r=nonce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name (unescaped).
    pub username: String,
    /// The client's nonce.
    pub nonce: String,
    /// `n=user,r=nonce[,extensions]`: part of the AuthMessage.
    pub bare: String,
}

impl ClientFirst {
    /// The message for `username` with `nonce`.
    pub fn new(username: &str, nonce: &str) -> ClientFirst {
        let bare = format!("n={},r={nonce}", escape_username(username));
        ClientFirst {
            username: username.to_owned(),
            nonce: nonce.to_owned(),
            bare,
        }
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!("n,,{}", self.bare).into_bytes()
    }

    /// Parses a client-first message (server side). Channel binding is refused, as in Kafka.
    pub fn parse(bytes: &[u8]) -> Result<ClientFirst, ScramError> {
        let s = utf8(bytes, "client-first message")?;
        let Some(rest) = s.strip_prefix("n,") else {
            return Err(err(
                "client-first message must start with n, (no channel binding)",
            ));
        };
        let Some((authzid, bare)) = rest.split_once(',') else {
            return Err(err("client-first message has no bare part"));
        };
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(err("malformed authzid"));
        }
        let attrs = attributes(bare)?;
        let (username, nonce) = match attrs.as_slice() {
            [('n', user), ('r', nonce), ..] => (unescape_username(user)?, *nonce),
            _ => return Err(err("client-first message needs n= and r=")),
        };
        if username.is_empty() {
            return Err(err("empty user name"));
        }
        printable_nonce(nonce)?;
        Ok(ClientFirst {
            username,
            nonce: nonce.to_owned(),
            bare: bare.to_owned(),
        })
    }
}

/// The server-first message: `r=nonce,s=salt,i=iterations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    /// Client nonce followed by the server's.
    pub nonce: String,
    /// The salt (decoded).
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// The message as sent: part of the AuthMessage.
    pub raw: String,
}

impl ServerFirst {
    /// The message for a combined `nonce` and a credential's salt and iterations.
    pub fn new(nonce: &str, salt: &[u8], iterations: u32) -> ServerFirst {
        let raw = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
        ServerFirst {
            nonce: nonce.to_owned(),
            salt: salt.to_vec(),
            iterations,
            raw,
        }
    }

    /// Parses a server-first message (client side); checks the iteration bounds.
    pub fn parse(bytes: &[u8]) -> Result<ServerFirst, ScramError> {
        let raw = utf8(bytes, "server-first message")?;
        let attrs = attributes(&raw)?;
        let (nonce, salt, iterations) = match attrs.as_slice() {
            [('m', _), ..] => return Err(err("server requires an unsupported SCRAM extension")),
            [('r', n), ('s', s), ('i', i), ..] => (*n, *s, *i),
            _ => return Err(err("server-first message needs r=, s= and i=")),
        };
        printable_nonce(nonce)?;
        let salt = BASE64.decode(salt).map_err(|_| err("salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| err("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(err(format!(
                "iteration count {iterations} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        Ok(ServerFirst {
            nonce: nonce.to_owned(),
            salt,
            iterations,
            raw,
        })
    }
}

/// The client-final message: `c=biws,r=nonce,p=proof`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    /// The combined nonce.
    pub nonce: String,
    /// The client proof (decoded).
    pub proof: Vec<u8>,
    /// `c=...,r=...`: part of the AuthMessage.
    pub without_proof: String,
}

impl ClientFinal {
    /// Parses a client-final message (server side).
    pub fn parse(bytes: &[u8]) -> Result<ClientFinal, ScramError> {
        let s = utf8(bytes, "client-final message")?;
        let Some((without_proof, proof)) = s.rsplit_once(",p=") else {
            return Err(err("client-final message has no proof"));
        };
        let attrs = attributes(without_proof)?;
        let nonce = match attrs.as_slice() {
            [('c', cb), ('r', nonce), ..] => {
                // "n,," and "y,," are the only channel-binding headers without binding data.
                if *cb != "biws" && *cb != "eSws" {
                    return Err(err("channel binding is not supported"));
                }
                *nonce
            }
            _ => return Err(err("client-final message needs c= and r=")),
        };
        let proof = BASE64
            .decode(proof)
            .map_err(|_| err("proof is not base64"))?;
        Ok(ClientFinal {
            nonce: nonce.to_owned(),
            proof,
            without_proof: without_proof.to_owned(),
        })
    }
}

/// The server-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFinal {
    /// `v=signature`: the server proves it knows the credential.
    Verifier(Vec<u8>),
    /// `e=reason`: the server refused.
    Error(String),
}

impl ServerFinal {
    /// Parses a server-final message (client side).
    pub fn parse(bytes: &[u8]) -> Result<ServerFinal, ScramError> {
        let s = utf8(bytes, "server-final message")?;
        let attrs = attributes(&s)?;
        match attrs.as_slice() {
            [('v', v), ..] => BASE64
                .decode(v)
                .map(ServerFinal::Verifier)
                .map_err(|_| err("server signature is not base64")),
            [('e', e), ..] => Ok(ServerFinal::Error((*e).to_owned())),
            _ => Err(err("server-final message needs v= or e=")),
        }
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            ServerFinal::Verifier(v) => format!("v={}", BASE64.encode(v)).into_bytes(),
            ServerFinal::Error(e) => format!("e={e}").into_bytes(),
        }
    }
}

/// `client-first-bare "," server-first "," client-final-without-proof`.
pub fn auth_message(client_first_bare: &str, server_first: &str, without_proof: &str) -> String {
    format!("{client_first_bare},{server_first},{without_proof}")
}

/// Server side: checks a client proof against a stored credential. Returns the server
/// signature to send back on success.
pub fn verify_client_proof(
    hash: ScramHash,
    credential: &ScramCredential,
    auth_message: &str,
    proof: &[u8],
) -> Option<Vec<u8>> {
    let client_signature = hash.hmac(&credential.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return None;
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let stored = hash.hash(&client_key);
    // Constant-time enough for a test broker; the client side uses `Mac::verify_slice`.
    if stored != credential.stored_key {
        return None;
    }
    Some(hash.hmac(&credential.server_key, auth_message.as_bytes()))
}

/// The client side of one SCRAM exchange.
#[derive(Debug)]
pub(crate) struct ScramClient {
    hash: ScramHash,
    first: ClientFirst,
    /// `ServerSignature`, known once the client-final message is built.
    expected_server_signature: Option<(Vec<u8>, Vec<u8>)>,
}

impl ScramClient {
    pub(crate) fn new(hash: ScramHash, username: &str, nonce: &str) -> ScramClient {
        ScramClient {
            hash,
            first: ClientFirst::new(username, nonce),
            expected_server_signature: None,
        }
    }

    /// Whether the client-final message has been sent (the next message is server-final).
    pub(crate) fn awaiting_server_final(&self) -> bool {
        self.expected_server_signature.is_some()
    }

    pub(crate) fn client_first(&self) -> Vec<u8> {
        self.first.to_bytes()
    }

    /// Answers the server-first message with the client-final message.
    pub(crate) fn client_final(
        &mut self,
        server_first: &[u8],
        password: &str,
    ) -> Result<Vec<u8>, ScramError> {
        let sf = ServerFirst::parse(server_first)?;
        if !sf.nonce.starts_with(&self.first.nonce) || sf.nonce.len() == self.first.nonce.len() {
            return Err(err("server nonce does not extend the client nonce"));
        }
        let salted = self
            .hash
            .salted_password(password.as_bytes(), &sf.salt, sf.iterations);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.hash(&client_key);
        let without_proof = format!("c=biws,r={}", sf.nonce);
        let auth = auth_message(&self.first.bare, &sf.raw, &without_proof);
        let client_signature = self.hash.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.hash.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some((server_key, auth.into_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server must prove it knows our credential.
    pub(crate) fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let Some((server_key, auth)) = &self.expected_server_signature else {
            return Err(err("server-final message before client-final"));
        };
        match ServerFinal::parse(server_final)? {
            ServerFinal::Error(e) => Err(err(format!("server refused: {e}"))),
            ServerFinal::Verifier(sig) => {
                let ok = match self.hash {
                    ScramHash::Sha256 => Hmac::<Sha256>::new_from_slice(server_key)
                        .map(|mut m| {
                            m.update(auth);
                            m.verify_slice(&sig).is_ok()
                        })
                        .unwrap_or(false),
                    ScramHash::Sha512 => Hmac::<Sha512>::new_from_slice(server_key)
                        .map(|mut m| {
                            m.update(auth);
                            m.verify_slice(&sig).is_ok()
                        })
                        .unwrap_or(false),
                };
                if ok {
                    Ok(())
                } else {
                    Err(err(
                        "the server's signature is wrong: it does not know our credential",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: the SCRAM-SHA-256 example (iterations 4096).
    #[test]
    fn rfc7677_example() {
        let mut c = ScramClient::new(ScramHash::Sha256, "user", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.client_final(server_first, "pencil").unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c
            .verify_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
        assert!(c.verify_server_final(b"e=invalid-proof").is_err());
    }

    #[test]
    fn server_side_verifies_what_the_client_computes() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            let cred = ScramCredential::new(hash, "s3cret", b"salty", 4096);
            let mut c = ScramClient::new(hash, "a=b,c", "clientnonce");
            let first = ClientFirst::parse(&c.client_first()).unwrap();
            assert_eq!(first.username, "a=b,c");
            let sf = ServerFirst::new(&format!("{}srv", first.nonce), &cred.salt, 4096);
            let fin = c.client_final(sf.raw.as_bytes(), "s3cret").unwrap();
            let cf = ClientFinal::parse(&fin).unwrap();
            let auth = auth_message(&first.bare, &sf.raw, &cf.without_proof);
            let sig = verify_client_proof(hash, &cred, &auth, &cf.proof).unwrap();
            c.verify_server_final(&ServerFinal::Verifier(sig).to_bytes())
                .unwrap();
            // The wrong password does not verify.
            let mut bad = ScramClient::new(hash, "a=b,c", "clientnonce");
            let fin = bad.client_final(sf.raw.as_bytes(), "guess").unwrap();
            let cf = ClientFinal::parse(&fin).unwrap();
            assert!(verify_client_proof(hash, &cred, &auth, &cf.proof).is_none());
        }
    }

    #[test]
    fn hostile_server_first_is_refused() {
        let mut c = ScramClient::new(ScramHash::Sha256, "u", "abc");
        for bad in [
            &b"r=xyz,s=AAAA,i=4096"[..], // does not extend our nonce
            b"r=abc,s=AAAA,i=4096",      // does not add a server part
            b"r=abcd,s=AAAA,i=1",        // too few iterations
            b"r=abcd,s=AAAA,i=99999999", // too many
            b"r=abcd,s=!!,i=4096",
            b"r=abcd,i=4096",
            b"m=ext,r=abcd,s=AAAA,i=4096",
            b"\xff\xfe",
            b"",
            b"=",
        ] {
            assert!(c.client_final(bad, "p").is_err(), "{:?}", bad);
        }
        assert!(ClientFirst::parse(b"p=tls-unique,,n=u,r=x").is_err());
        assert!(ClientFirst::parse(b"n,,n=u=zz,r=x").is_err());
        assert!(ClientFinal::parse(b"c=biws,r=x").is_err());
        assert!(ServerFinal::parse(b"x=1").is_err());
    }
}
