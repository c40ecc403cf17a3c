//! Committed offsets in `data_dir` (Kafka keeps them in the compacted `__consumer_offsets`
//! topic): one line per group and partition, the whole file rewritten (temporary file, then
//! rename: `state_file`) whenever a commit is stored, whichever protocol the group speaks
//! and whether the offsets came from OffsetCommit or from a committed transaction.
//!
//! Line format (fields separated by one space, `v1` first):
//! `v1 <hex group id> <topic> <partition> <offset> <leader epoch> <commit ms> <metadata>`,
//! the metadata hex-encoded, or `-` when the commit had none (null). Topic names cannot hold
//! a space. Lines that do not parse are skipped with a warning: a damaged line loses one
//! partition's commit, never the others.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{Committed, Group};
use crate::state_file::{self, hex, unhex};

/// The committed offsets of one group, as the file holds them.
pub(crate) type GroupOffsets = BTreeMap<(String, i32), Committed>;

/// The file in the data directory.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("__consumer_offsets")
}

/// One line.
fn line(group: &str, topic: &str, partition: i32, c: &Committed) -> String {
    format!(
        "v1 {} {topic} {partition} {} {} {} {}\n",
        hex(group),
        c.offset,
        c.leader_epoch,
        c.commit_timestamp_ms,
        c.metadata.as_deref().map_or_else(|| "-".to_owned(), hex),
    )
}

/// Parses one line.
fn parse(l: &str) -> Option<(String, (String, i32), Committed)> {
    let f: Vec<&str> = l.split(' ').collect();
    if f.len() != 8 || f[0] != "v1" || f[2].is_empty() {
        return None;
    }
    let committed = Committed {
        offset: f[4].parse().ok()?,
        leader_epoch: f[5].parse().ok()?,
        commit_timestamp_ms: f[6].parse().ok()?,
        metadata: match f[7] {
            "-" => None,
            m => Some(unhex(m)?),
        },
    };
    Some((
        unhex(f[1])?,
        (f[2].to_owned(), f[3].parse().ok()?),
        committed,
    ))
}

/// Writes the committed offsets of every group.
pub(crate) fn save(data_dir: &Path, groups: &HashMap<String, Group>) -> std::io::Result<()> {
    let mut ids: Vec<&String> = groups.keys().collect();
    ids.sort();
    let mut out = String::new();
    for id in ids {
        for ((topic, p), c) in &groups[id].offsets {
            out.push_str(&line(id, topic, *p, c));
        }
    }
    state_file::write_atomic(&path(data_dir), &out)
}

/// Reads the committed offsets (none if there is no file).
pub(crate) fn load(data_dir: &Path) -> std::io::Result<HashMap<String, GroupOffsets>> {
    let mut out: HashMap<String, GroupOffsets> = HashMap::new();
    for (group, tp, c) in state_file::read_lines(&path(data_dir), "committed offsets", parse)? {
        out.entry(group).or_default().insert(tp, c);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let with = Committed {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("any text: with spaces\nand lines".into()),
            commit_timestamp_ms: 1_700_000_000_123,
        };
        let l = line("group one", "a.b-c_d", 7, &with);
        assert_eq!(
            parse(l.trim_end()),
            Some(("group one".into(), ("a.b-c_d".into(), 7), with))
        );
        for metadata in [None, Some(String::new())] {
            let c = Committed {
                offset: 0,
                leader_epoch: -1,
                metadata,
                commit_timestamp_ms: 5,
            };
            let (_, _, back) = parse(line("g", "t", 0, &c).trim_end()).unwrap();
            assert_eq!(back, c, "null and empty metadata stay apart");
        }
    }

    #[test]
    fn damaged_lines_do_not_parse() {
        for l in [
            "",
            "v2 x67 t 0 1 -1 5 -",
            "v1 x6 t 0 1 -1 5 -",
            "v1 x67 t 0 1 -1 5",
            "v1 x67 t 0 1 -1 5 - extra",
            "v1 x67  0 1 -1 5 -",
            "v1 x67 t p 1 -1 5 -",
            "v1 x67 t 0 one -1 5 -",
            "v1 x67 t 0 1 -1 5 x6",
            "v1 x67 t 0 1 -1 soon -",
        ] {
            assert!(parse(l).is_none(), "{l}");
        }
    }
}
