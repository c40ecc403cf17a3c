//! [`Layout`]: how the journal and the snapshot store place persistence ids on topics.
//!
//! Shared by both crates (and re-exported by each) so that one setting names one thing.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// How persistence ids are placed on Kafka topics.
///
/// - [`Layout::Shared`] (v2, the default): a fixed set of topics whatever the number of ids.
///   An id lives in partition `murmur2(utf8(id)) mod P` of one journal topic (the Java
///   client's rule, so any Kafka client finds it), with a compacted index topic beside it
///   and one compacted snapshot topic. Holds millions of ids.
/// - [`Layout::PerId`] (v1): one topic per persistence id (as the Scala plugins do), kept for
///   existing data; `kafka-persistence migrate` copies it into v2.
///
/// ```
/// use kafka_persistence_wire::Layout;
/// assert_eq!(Layout::default(), Layout::Shared);
/// assert_eq!("per-id".parse::<Layout>(), Ok(Layout::PerId));
/// assert_eq!(Layout::Shared.to_string(), "shared");
/// let l: Layout = serde_json::from_str("\"per-id\"").unwrap();
/// assert_eq!(l, Layout::PerId);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Layout v2: many ids per partition on a fixed set of topics (the default).
    #[default]
    Shared,
    /// Layout v1: one topic per persistence id.
    PerId,
}

impl Layout {
    /// The name used in configuration files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Shared => "shared",
            Layout::PerId => "per-id",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shared" | "v2" => Ok(Layout::Shared),
            "per-id" | "v1" => Ok(Layout::PerId),
            other => Err(format!(
                "unknown layout {other:?} (expected \"shared\" or \"per-id\")"
            )),
        }
    }
}
