//! ApiVersions (key 18), versions 0-3.
//!
//! Behaviour: advertises exactly the registry in `api/mod.rs` (what is implemented). A request
//! at a version above 3 is answered with a v0 body carrying UNSUPPORTED_VERSION and our key-18
//! range (KIP-511), so the client retries at a version we speak. The response header is
//! always v0. Keys given to `TestServerBuilder::hide_api` are left out (an older broker).
//!
//! Skipped: the client software name/version regex check (INVALID_REQUEST in Kafka),
//! supported/finalized features.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::{Ctx, SUPPORTED};
use kafka_persistence_wire::ErrorCode;

fn entry(key: ApiKey, min: i16, max: i16) -> ApiVersion {
    let mut v = ApiVersion::default();
    v.api_key = key as i16;
    v.min_version = min;
    v.max_version = max;
    v
}

/// The answer with `code` and no api list.
pub(crate) fn error(code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = code;
    r
}

/// The v0 UNSUPPORTED_VERSION answer carrying our own key-18 range (KIP-511).
pub(crate) fn unsupported() -> ApiVersionsResponse {
    let mut r = error(ErrorCode::UNSUPPORTED_VERSION);
    if let Some((min, max)) = super::supported_range(ApiKey::ApiVersions) {
        r.api_keys.push(entry(ApiKey::ApiVersions, min, max));
    }
    r
}

/// An injected UNSUPPORTED_VERSION: a v0 body advertising ApiVersions up to `version - 1`
/// (nothing for v0), as an older broker would.
pub(crate) fn unsupported_below(version: i16) -> ApiVersionsResponse {
    let mut r = error(ErrorCode::UNSUPPORTED_VERSION);
    if let Some((min, max)) = super::supported_range(ApiKey::ApiVersions) {
        let max = max.min(version - 1);
        if max >= min {
            r.api_keys.push(entry(ApiKey::ApiVersions, min, max));
        }
    }
    r
}

/// Handles ApiVersions; returns the version to encode the answer with.
pub(crate) fn handle(
    ctx: &Ctx,
    _req: ApiVersionsRequest,
    version: i16,
) -> (i16, ApiVersionsResponse) {
    let mut r = ApiVersionsResponse::default();
    let Some((min, max)) = super::supported_range(ApiKey::ApiVersions) else {
        return (0, unsupported());
    };
    if version < min || version > max {
        return (0, unsupported());
    }
    let hidden = &ctx.cluster.settings.hidden_apis;
    r.api_keys = SUPPORTED
        .iter()
        .filter(|(k, _, _)| !hidden.contains(&(*k as i16)))
        .map(|&(k, min, max)| entry(k, min, max))
        .collect();
    (version, r)
}
