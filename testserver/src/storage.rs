//! Optional on-disk storage (`TestServerBuilder::data_dir`), so restart tests can see data.
//!
//! Layout under the data directory:
//! - `<topic>/topic.conf`: `id=<32 hex>`, `partitions=<n>`, then `config.<key>=<value>` lines.
//! - `<topic>/<partition>.log`: the partition's record batches, raw, back to back, with their
//!   assigned offsets (appended as produced; rewritten whole after compaction).
//! - `<topic>/<partition>.start`: the log start offset, when DeleteRecords moved it.
//!
//! Not crash safe (no fsync, no atomic rename of the config): a truncated last batch is
//! ignored on load, anything worse makes the partition start empty. Producer state (idempotent
//! sequences) is not written separately: on load it is rebuilt from the batches' headers (as
//! Kafka rebuilds it from its log), so a retried batch is still recognised after a restart.
//! Topic names are safe file names by construction (`[a-zA-Z0-9._-]`, not `.`/`..`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_persistence_wire::record::BatchHeader;

use crate::log::StoredBatch;

/// The append handle of one partition's file.
#[derive(Debug)]
pub(crate) struct PartitionFile {
    dir: PathBuf,
    partition: i32,
    file: File,
}

impl PartitionFile {
    fn log_path(dir: &Path, partition: i32) -> PathBuf {
        dir.join(format!("{partition}.log"))
    }

    /// Opens (creating) the partition's log file for appending.
    pub(crate) fn open(dir: &Path, partition: i32) -> io::Result<PartitionFile> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(Self::log_path(dir, partition))?;
        Ok(PartitionFile {
            dir: dir.to_path_buf(),
            partition,
            file,
        })
    }

    /// Appends one batch.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Persists a new log start offset.
    pub(crate) fn write_log_start(&mut self, offset: i64) -> io::Result<()> {
        fs::write(
            self.dir.join(format!("{}.start", self.partition)),
            offset.to_string(),
        )
    }

    /// Replaces the whole file with `batches` (after compaction).
    pub(crate) fn rewrite<'a>(
        &mut self,
        batches: impl Iterator<Item = &'a StoredBatch>,
    ) -> io::Result<()> {
        let tmp = self.dir.join(format!("{}.log.tmp", self.partition));
        {
            let mut f = File::create(&tmp)?;
            for b in batches {
                f.write_all(&b.bytes)?;
            }
        }
        let path = Self::log_path(&self.dir, self.partition);
        fs::rename(&tmp, &path)?;
        self.file = OpenOptions::new().append(true).open(path)?;
        Ok(())
    }
}

/// What was found on disk for one topic.
#[derive(Debug)]
pub(crate) struct LoadedTopic {
    pub(crate) name: String,
    pub(crate) id: [u8; 16],
    pub(crate) configs: Vec<(String, String)>,
    pub(crate) partitions: Vec<LoadedPartition>,
}

/// What was found on disk for one partition.
#[derive(Debug)]
pub(crate) struct LoadedPartition {
    pub(crate) batches: Vec<StoredBatch>,
    pub(crate) log_start_offset: i64,
    pub(crate) high_watermark: i64,
}

/// Writes a topic's directory and config file.
pub(crate) fn create_topic(
    root: &Path,
    name: &str,
    id: [u8; 16],
    partitions: i32,
    configs: &[(String, String)],
) -> io::Result<PathBuf> {
    let dir = root.join(name);
    fs::create_dir_all(&dir)?;
    let mut text = format!("id={}\npartitions={partitions}\n", hex(&id));
    for (k, v) in configs {
        // Values with newlines cannot be represented; Kafka configs never have them.
        text.push_str(&format!("config.{k}={}\n", v.replace('\n', " ")));
    }
    fs::write(dir.join("topic.conf"), text)?;
    Ok(dir)
}

/// Removes a topic's directory.
pub(crate) fn delete_topic(root: &Path, name: &str) -> io::Result<()> {
    match fs::remove_dir_all(root.join(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn hex(b: &[u8; 16]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Loads every topic under `root` (creating `root` if needed).
pub(crate) fn load_all(root: &Path) -> io::Result<Vec<LoadedTopic>> {
    fs::create_dir_all(root)?;
    let mut out = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Ok(conf) = fs::read_to_string(entry.path().join("topic.conf")) else {
            tracing::warn!(topic = %name, reason = "no topic.conf", "skipping directory in data_dir");
            continue;
        };
        let mut id = None;
        let mut partitions = None;
        let mut configs = Vec::new();
        for line in conf.lines() {
            if let Some(v) = line.strip_prefix("id=") {
                id = unhex(v);
            } else if let Some(v) = line.strip_prefix("partitions=") {
                partitions = v.trim().parse::<i32>().ok();
            } else if let Some(kv) = line.strip_prefix("config.") {
                if let Some((k, v)) = kv.split_once('=') {
                    configs.push((k.to_string(), v.to_string()));
                }
            }
        }
        let (Some(id), Some(n)) = (id, partitions) else {
            tracing::warn!(topic = %name, reason = "bad topic.conf", "skipping directory in data_dir");
            continue;
        };
        let mut parts = Vec::new();
        for p in 0..n.max(0) {
            parts.push(load_partition(&entry.path(), p));
        }
        out.push(LoadedTopic {
            name,
            id,
            configs,
            partitions: parts,
        });
    }
    Ok(out)
}

fn load_partition(dir: &Path, partition: i32) -> LoadedPartition {
    let log_start_offset = fs::read_to_string(dir.join(format!("{partition}.start")))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let data = fs::read(dir.join(format!("{partition}.log"))).unwrap_or_default();
    let data = Bytes::from(data);
    let mut batches = Vec::new();
    let mut pos = 0usize;
    let mut high_watermark = log_start_offset;
    while pos < data.len() {
        let Ok(h) = BatchHeader::parse(&data[pos..]) else {
            break;
        };
        let size = h.total_size();
        if size < BatchHeader::SIZE || pos + size > data.len() {
            tracing::warn!(
                partition,
                pos,
                reason = "truncated batch",
                "ignoring tail of partition log"
            );
            break;
        }
        let last_offset = h.last_offset();
        high_watermark = high_watermark.max(last_offset + 1);
        if last_offset >= log_start_offset {
            batches.push(StoredBatch {
                base_offset: h.base_offset,
                last_offset,
                max_timestamp: h.max_timestamp,
                bytes: data.slice(pos..pos + size),
            });
        }
        pos += size;
    }
    LoadedPartition {
        batches,
        log_start_offset,
        high_watermark,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255, 0];
        assert_eq!(unhex(&hex(&id)), Some(id));
        assert_eq!(unhex("zz"), None);
    }
}
