//! The transaction coordinator's state in `data_dir` (Kafka keeps it in the compacted
//! `__transaction_state` topic): one line per transactional id, rewritten whole (write to a
//! temporary file, then rename) whenever a transactional id changes state.
//!
//! Line format (fields separated by one space, `v1` first):
//! `v1 <hex transactional id> <producer id> <epoch> <timeout ms> <open 0|1> <start ms>`
//! `<partitions: topic:partition,... or -> <groups: hex,hex,... or ->`.
//! Transactional and group ids are hex-encoded (they may hold any character); topic names
//! cannot hold a space, a comma or a colon. Lines that do not parse are skipped with a
//! warning: a damaged line loses one transactional id, never the others (see `state_file`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::TxnMeta;
use crate::state_file::{self, hex, unhex};

/// The file in the data directory.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("__transaction_state")
}

/// One line for `tid`.
fn line(tid: &str, m: &TxnMeta) -> String {
    let parts = if m.partitions.is_empty() {
        "-".to_owned()
    } else {
        m.partitions
            .iter()
            .map(|(t, p)| format!("{t}:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let groups = if m.groups.is_empty() {
        "-".to_owned()
    } else {
        m.groups
            .iter()
            .map(|g| hex(g))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "v1 {} {} {} {} {} {} {parts} {groups}\n",
        hex(tid),
        m.producer_id,
        m.epoch,
        m.timeout_ms,
        u8::from(m.open),
        m.started_ms,
    )
}

/// Parses one line.
fn parse(l: &str) -> Option<(String, TxnMeta)> {
    let f: Vec<&str> = l.split(' ').collect();
    if f.len() != 9 || f[0] != "v1" {
        return None;
    }
    let tid = unhex(f[1])?;
    let partitions: Option<BTreeSet<(String, i32)>> = if f[7] == "-" {
        Some(BTreeSet::new())
    } else {
        f[7].split(',')
            .map(|tp| {
                let (t, p) = tp.rsplit_once(':')?;
                Some((t.to_owned(), p.parse().ok()?))
            })
            .collect()
    };
    let groups: Option<BTreeSet<String>> = if f[8] == "-" {
        Some(BTreeSet::new())
    } else {
        f[8].split(',').map(unhex).collect()
    };
    let meta = TxnMeta {
        producer_id: f[2].parse().ok()?,
        epoch: f[3].parse().ok()?,
        timeout_ms: f[4].parse().ok()?,
        open: match f[5] {
            "0" => false,
            "1" => true,
            _ => return None,
        },
        started_ms: f[6].parse().ok()?,
        partitions: partitions?,
        groups: groups?,
        ..TxnMeta::default()
    };
    Some((tid, meta))
}

/// Writes the whole state.
pub(crate) fn save(data_dir: &Path, state: &HashMap<String, TxnMeta>) -> std::io::Result<()> {
    let mut ids: Vec<&String> = state.keys().collect();
    ids.sort();
    let mut out = String::new();
    for tid in ids {
        out.push_str(&line(tid, &state[tid]));
    }
    state_file::write_atomic(&path(data_dir), &out)
}

/// Reads the state (empty if there is no file).
pub(crate) fn load(data_dir: &Path) -> std::io::Result<HashMap<String, TxnMeta>> {
    Ok(
        state_file::read_lines(&path(data_dir), "transaction state", parse)?
            .into_iter()
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let mut m = TxnMeta {
            producer_id: 1001,
            epoch: 7,
            timeout_ms: 60_000,
            open: true,
            started_ms: 123,
            ..TxnMeta::default()
        };
        m.partitions.insert(("a.b-c_d".into(), 3));
        m.partitions.insert(("t".into(), 0));
        m.groups.insert("g 1,:x".into());
        let l = line("tid with spaces\n", &m);
        let (tid, back) = parse(l.trim_end()).unwrap();
        assert_eq!(tid, "tid with spaces\n");
        assert_eq!(back.partitions, m.partitions);
        assert_eq!(back.groups, m.groups);
        assert_eq!(
            (
                back.producer_id,
                back.epoch,
                back.timeout_ms,
                back.open,
                back.started_ms
            ),
            (1001, 7, 60_000, true, 123)
        );
        let empty = line("e", &TxnMeta::default());
        assert!(parse(empty.trim_end()).is_some());
    }

    #[test]
    fn damaged_lines_do_not_parse() {
        for l in [
            "",
            "v2 x61 1 0 1 0 0 - -",
            "v1 x6 1 0 1 0 0 - -",
            "v1 x61 1 0 1 2 0 - -",
            "v1 x61 1 0 1 0 0 t - ",
            "v1 x61 1 0 1 0 0 t:z -",
            "v1 x61 a 0 1 0 0 - -",
        ] {
            assert!(parse(l).is_none(), "{l}");
        }
    }
}
