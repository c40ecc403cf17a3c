//! Framing around the `kafka-protocol` message schemas, with guards for hostile input.
//!
//! A Kafka frame is a big-endian `i32` length followed by that many bytes: a header and a
//! body. The functions here *write* frames with the length prefix, and *read* frames without
//! it (the connection reads the prefix, checks it against the maximum frame size before it
//! allocates, then hands the rest here).
//!
//! Two protocol quirks live here so that nobody else has to remember them:
//! - the request header version comes from [`ApiKey::request_header_version`];
//! - the ApiVersions *response* header is always v0 (never flexible), whatever the body version,
//!   so a client can parse it even when it asked for a version the broker does not know.
//!
//! `kafka-protocol` reports errors as `anyhow::Error`; they are turned into [`ProtocolError`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// The largest frame accepted by default (Kafka's `socket.request.max.bytes` is 100 MiB).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Size of the length prefix in front of every frame.
pub const LENGTH_PREFIX: usize = 4;

/// Smallest request header: api key, api version, correlation id, client id length.
const MIN_REQUEST_HEADER: usize = 10;

/// Smallest response header: correlation id.
const MIN_RESPONSE_HEADER: usize = 4;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame length read off the wire is negative or exceeds the configured maximum.
    #[error("frame size {size} outside 0..={max}")]
    FrameSize {
        /// The length as read (negative lengths are reported as their absolute value + max).
        size: i64,
        /// The maximum frame size in force.
        max: usize,
    },
    /// The frame is shorter than the smallest header.
    #[error("frame of {0} bytes is too short for a header")]
    ShortFrame(usize),
    /// The api key is not known to the protocol schemas.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The version is outside the range the schema supports for this api.
    #[error("version {version} of {api:?} is not supported by the schemas")]
    UnsupportedVersion {
        /// The api.
        api: ApiKey,
        /// The version asked for.
        version: i16,
    },
    /// Header or body could not be encoded.
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// Which part ("request header", "request body", "response").
        what: &'static str,
        /// The encoder's explanation.
        message: String,
    },
    /// Header or body is malformed.
    #[error("malformed {what}: {message}")]
    Decode {
        /// Which part ("response header", "response body", ...).
        what: &'static str,
        /// The decoder's explanation.
        message: String,
    },
    /// The body decoded but left bytes over, which means a version mismatch.
    #[error("{remaining} trailing bytes after {what}")]
    TrailingBytes {
        /// Which part.
        what: &'static str,
        /// How many bytes were left.
        remaining: usize,
    },
}

fn encode_err<E: std::fmt::Display>(what: &'static str, e: E) -> ProtocolError {
    ProtocolError::Encode {
        what,
        message: format!("{e:#}"),
    }
}

fn decode_err<E: std::fmt::Display>(what: &'static str, e: E) -> ProtocolError {
    ProtocolError::Decode {
        what,
        message: format!("{e:#}"),
    }
}

/// Checks a frame length read off the wire (the 4-byte prefix) against `max` before anything
/// is allocated for it. Returns the length as `usize`.
pub fn check_frame_len(len: i32, max: usize) -> Result<usize, ProtocolError> {
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ProtocolError::FrameSize {
            size: i64::from(len),
            max,
        }),
    }
}

fn check_version(api: ApiKey, version: i16) -> Result<(), ProtocolError> {
    let range = api.valid_versions();
    if version < range.min || version > range.max {
        return Err(ProtocolError::UnsupportedVersion { api, version });
    }
    Ok(())
}

/// Writes one length-prefixed request frame (length, header, body) to the end of `out`.
///
/// On error `out` is left as it was.
pub fn encode_request<R: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &R,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    check_version(api, version)?;
    let start = out.len();
    let result = encode_request_inner(api, version, correlation_id, client_id, body, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_request_inner<R: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &R,
    out: &mut BytesMut,
    start: usize,
) -> Result<(), ProtocolError> {
    out.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|s| StrBytes::from_string(s.to_owned())));
    header
        .encode(out, api.request_header_version(version))
        .map_err(|e| encode_err("request header", e))?;
    body.encode(out, version)
        .map_err(|e| encode_err("request body", e))?;
    let len = out.len() - start - LENGTH_PREFIX;
    let len = i32::try_from(len).map_err(|_| ProtocolError::FrameSize {
        size: len as i64,
        max: i32::MAX as usize,
    })?;
    out[start..start + LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads the correlation id at the front of a response frame (without the length prefix),
/// without decoding anything else. Every response header starts with it.
pub fn peek_correlation_id(frame: &[u8]) -> Result<i32, ProtocolError> {
    match frame.get(..MIN_RESPONSE_HEADER) {
        Some(b) => Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(ProtocolError::ShortFrame(frame.len())),
    }
}

/// Decodes one response frame (without the length prefix) of `api` at `version`: returns the
/// correlation id and the body. The ApiVersions response header is always v0.
///
/// Trailing bytes after the body are tolerated (a newer broker may add fields in a tagged
/// section we skip) only for non-flexible versions; the decoder consumes tagged fields itself.
pub fn decode_response<R: Decodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(i32, R), ProtocolError> {
    check_version(api, version)?;
    if frame.len() < MIN_RESPONSE_HEADER {
        return Err(ProtocolError::ShortFrame(frame.len()));
    }
    let mut buf = frame;
    let header_version = response_header_version(api, version);
    let header = ResponseHeader::decode(&mut buf, header_version)
        .map_err(|e| decode_err("response header", e))?;
    let body = R::decode(&mut buf, version).map_err(|e| decode_err("response body", e))?;
    Ok((header.correlation_id, body))
}

/// The response header version for `api` at `version` (0 for ApiVersions, always).
pub fn response_header_version(api: ApiKey, version: i16) -> i16 {
    if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    }
}

/// Broker side: decodes one request frame (without the length prefix) into its header and
/// typed body. Unknown keys and versions outside the schema range are errors, never panics.
pub fn decode_request(frame: Bytes) -> Result<(RequestHeader, RequestKind), ProtocolError> {
    if frame.len() < MIN_REQUEST_HEADER {
        return Err(ProtocolError::ShortFrame(frame.len()));
    }
    let mut peek = &frame[..4];
    let key = peek.get_i16();
    let version = peek.get_i16();
    let api = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey(key))?;
    check_version(api, version)?;
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| decode_err("request header", e))?;
    let body =
        RequestKind::decode(api, &mut buf, version).map_err(|e| decode_err("request body", e))?;
    Ok((header, body))
}

/// Broker side: writes one length-prefixed response frame to the end of `out`. The header
/// version follows `api` and `version` (v0 for ApiVersions). On error `out` is left as it was.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let start = out.len();
    let result = (|| {
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(out, response_header_version(api, version))
            .map_err(|e| encode_err("response header", e))?;
        body.encode(out, version)
            .map_err(|e| encode_err("response", e))?;
        let len = out.len() - start - LENGTH_PREFIX;
        let len = i32::try_from(len).map_err(|_| ProtocolError::FrameSize {
            size: len as i64,
            max: i32::MAX as usize,
        })?;
        out[start..start + LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    };

    #[test]
    fn request_frame_has_length_prefix_and_header() {
        let mut out = BytesMut::new();
        encode_request(
            ApiKey::Metadata,
            12,
            77,
            Some("cid"),
            &MetadataRequest::default(),
            &mut out,
        )
        .unwrap();
        let len = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(len, out.len() - 4);
        let (header, body) = decode_request(out.freeze().slice(4..)).unwrap();
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 12);
        assert_eq!(header.correlation_id, 77);
        assert_eq!(header.client_id.as_ref().map(|s| s.as_str()), Some("cid"));
        assert!(matches!(body, RequestKind::Metadata(_)));
    }

    #[test]
    fn response_round_trip_and_api_versions_header_is_v0() {
        for (api, version) in [(ApiKey::ApiVersions, 3), (ApiKey::Metadata, 12)] {
            let body = match api {
                ApiKey::ApiVersions => {
                    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_error_code(35))
                }
                _ => ResponseKind::Metadata(MetadataResponse::default()),
            };
            let mut out = BytesMut::new();
            encode_response(api, version, 5, &body, &mut out).unwrap();
            let frame = out.freeze().slice(4..);
            assert_eq!(peek_correlation_id(&frame).unwrap(), 5);
            if api == ApiKey::ApiVersions {
                // v0 header: correlation id then immediately the error code (no tag buffer).
                assert_eq!(&frame[4..6], &35i16.to_be_bytes());
                let (cid, r) = decode_response::<ApiVersionsResponse>(api, version, frame).unwrap();
                assert_eq!(cid, 5);
                assert_eq!(r.error_code, 35);
            } else {
                let (cid, _r) = decode_response::<MetadataResponse>(api, version, frame).unwrap();
                assert_eq!(cid, 5);
            }
        }
    }

    #[test]
    fn frame_length_checked() {
        assert_eq!(check_frame_len(10, 100).unwrap(), 10);
        assert!(check_frame_len(101, 100).is_err());
        assert!(check_frame_len(-1, 100).is_err());
        assert!(check_frame_len(i32::MAX, DEFAULT_MAX_FRAME_SIZE).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for len in 0..200usize {
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                v.push(seed as u8);
            }
            let b = Bytes::from(v);
            let _ = decode_request(b.clone());
            let _ = decode_response::<MetadataResponse>(ApiKey::Metadata, 12, b.clone());
            let _ = decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, 3, b);
        }
        assert!(decode_request(Bytes::from_static(&[0, 3])).is_err());
        assert!(matches!(
            decode_request(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])),
            Err(ProtocolError::UnknownApiKey(_))
        ));
        let _ = ApiVersionsRequest::default();
    }

    #[test]
    fn unsupported_version_rejected_on_encode() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let r = encode_request(
            ApiKey::Produce,
            0,
            1,
            None,
            &MetadataRequest::default(),
            &mut out,
        );
        assert!(matches!(r, Err(ProtocolError::UnsupportedVersion { .. })));
        assert_eq!(&out[..], b"keep");
    }
}
