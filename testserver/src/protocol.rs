//! Broker-side framing: turn one request frame into a typed request, and a typed response
//! into one length-prefixed frame.
//!
//! A frame here is the bytes *after* the 4-byte length prefix. The connection loop checks the
//! prefix against [`MAX_FRAME_SIZE`] before it allocates anything; [`decode_request`] checks
//! again, so a caller (the fuzz target) can hand it any bytes.
//!
//! Unknown api keys and versions outside the ranges this broker advertises are rejected
//! without panicking. ApiVersions is the exception (KIP-511): a request at a version we do not
//! know is still returned, with a default body, so the handler can answer UNSUPPORTED_VERSION
//! with a v0 body that carries its own supported range.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::api;

/// The largest request frame the broker accepts (Kafka's `socket.request.max.bytes` default).
pub const MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Smallest possible request header: api key, api version, correlation id, client id length.
const MIN_HEADER_SIZE: usize = 10;

/// Why a frame could not be decoded or a response not encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame is shorter than a request header or longer than [`MAX_FRAME_SIZE`].
    #[error("invalid frame size {0}")]
    FrameSize(usize),
    /// The api key is not one this broker serves.
    #[error("unknown or unsupported api key {0}")]
    UnknownApiKey(i16),
    /// The api version is outside the range this broker advertises for the key.
    #[error("unsupported version {version} of api key {api_key}")]
    UnsupportedVersion {
        /// The api key of the request.
        api_key: i16,
        /// The version the client asked for.
        version: i16,
    },
    /// The header or body is malformed.
    #[error("malformed {what}: {message}")]
    Malformed {
        /// Which part failed ("request header", "request body", "response").
        what: &'static str,
        /// The decoder's explanation.
        message: String,
    },
}

/// Decodes one request frame (without its length prefix) into its header and body.
///
/// Never panics, whatever the bytes. Rejects unknown api keys and versions this broker does
/// not advertise, except ApiVersions (see the module docs).
pub fn decode_request(frame: Bytes) -> Result<(RequestHeader, RequestKind), ProtocolError> {
    if frame.len() < MIN_HEADER_SIZE || frame.len() > MAX_FRAME_SIZE {
        return Err(ProtocolError::FrameSize(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(raw_key).map_err(|()| ProtocolError::UnknownApiKey(raw_key))?;
    let Some((min, max)) = api::supported_range(key) else {
        return Err(ProtocolError::UnknownApiKey(raw_key));
    };
    let is_api_versions = key == ApiKey::ApiVersions;
    if (version < min || version > max) && !is_api_versions {
        return Err(ProtocolError::UnsupportedVersion {
            api_key: raw_key,
            version,
        });
    }
    let mut buf = frame;
    // ApiVersions requests newer than any known version still use header v2 (KIP-511).
    let header_version = if is_api_versions && version > ApiKey::ApiVersions.valid_versions().max {
        2
    } else {
        key.request_header_version(version)
    };
    let header =
        <RequestHeader as kafka_protocol::protocol::Decodable>::decode(&mut buf, header_version)
            .map_err(|e| ProtocolError::Malformed {
                what: "request header",
                message: e.to_string(),
            })?;
    if is_api_versions && (version < min || version > max) {
        // The body of an unknown version cannot be trusted; the handler only needs the header.
        return Ok((
            header,
            RequestKind::ApiVersions(kafka_protocol::messages::ApiVersionsRequest::default()),
        ));
    }
    let body =
        RequestKind::decode(key, &mut buf, version).map_err(|e| ProtocolError::Malformed {
            what: "request body",
            message: format!("{e:#}"),
        })?;
    Ok((header, body))
}

/// Appends one length-prefixed response frame (header + body) to `out`.
///
/// The header version follows the api and version; ApiVersions always uses header v0.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let start = out.len();
    out.put_i32(0);
    let header_version = if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    };
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let res = header
        .encode(out, header_version)
        .and_then(|()| body.encode(out, version));
    if let Err(e) = res {
        out.truncate(start);
        return Err(ProtocolError::Malformed {
            what: "response",
            message: format!("{e:#}"),
        });
    }
    let len = out.len() - start - 4;
    let Ok(len) = i32::try_from(len) else {
        out.truncate(start);
        return Err(ProtocolError::FrameSize(len));
    };
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, ProduceRequest};
    use kafka_protocol::protocol::HeaderVersion;
    use proptest::prelude::*;

    fn request<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, body: &R) -> Bytes {
        let mut h = RequestHeader::default();
        h.request_api_key = key as i16;
        h.request_api_version = version;
        h.correlation_id = 7;
        let mut out = BytesMut::new();
        h.encode(&mut out, R::header_version(version)).unwrap();
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    #[test]
    fn decodes_a_valid_request() {
        let mut m = MetadataRequest::default();
        m.topics = None;
        let (h, body) = decode_request(request(ApiKey::Metadata, 12, &m)).unwrap();
        assert_eq!((h.request_api_key, h.correlation_id), (3, 7));
        assert!(matches!(body, RequestKind::Metadata(_)));
    }

    #[test]
    fn rejects_unknown_keys_and_unadvertised_versions() {
        let mut frame = request(ApiKey::Metadata, 12, &MetadataRequest::default()).to_vec();
        frame[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(
            decode_request(frame.into()),
            Err(ProtocolError::UnknownApiKey(999))
        ));
        // Produce v13 exists in kafka-protocol but is not advertised here.
        let p = ProduceRequest::default();
        assert!(matches!(
            decode_request(request(ApiKey::Produce, 13, &p)),
            Err(ProtocolError::UnsupportedVersion {
                api_key: 0,
                version: 13
            })
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 3])),
            Err(ProtocolError::FrameSize(2))
        ));
    }

    #[test]
    fn api_versions_of_an_unknown_version_still_decodes_the_header() {
        let mut frame = BytesMut::new();
        frame.put_i16(18);
        frame.put_i16(99);
        frame.put_i32(5);
        frame.put_i16(-1); // null client id
        frame.put_u8(0); // no tagged fields
        frame.extend_from_slice(&[1, 2, 3]); // a body we do not understand
        let (h, body) = decode_request(frame.freeze()).unwrap();
        assert_eq!((h.request_api_version, h.correlation_id), (99, 5));
        assert!(matches!(body, RequestKind::ApiVersions(_)));
    }

    #[test]
    fn response_frames_are_length_prefixed_with_a_v0_header_for_api_versions() {
        let body =
            ResponseKind::ApiVersions(kafka_protocol::messages::ApiVersionsResponse::default());
        let mut out = BytesMut::new();
        encode_response(ApiKey::ApiVersions, 3, 42, &body, &mut out).unwrap();
        let len = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(len, out.len() - 4);
        assert_eq!(&out[4..8], &42i32.to_be_bytes());
        // v0 header: the error code follows the correlation id directly (no tagged fields).
        assert_eq!(&out[8..10], &[0, 0]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(Bytes::from(bytes));
        }

        #[test]
        fn any_known_header_with_garbage_body_never_panics(
            key in 0i16..70,
            version in -1i16..20,
            tail in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut frame = BytesMut::new();
            frame.put_i16(key);
            frame.put_i16(version);
            frame.put_i32(1);
            frame.put_i16(-1);
            frame.extend_from_slice(&tail);
            let _ = decode_request(frame.freeze());
        }
    }
}
