//! Chunk I/O, the same in both layouts: a payload too large for one index record is split
//! into chunk records (each its own record batch, at most the topic's `max.message.bytes`
//! minus headroom), written before the index record whose [`Manifest`] commits them, read
//! back by offset and checked (key, length, CRC-32C), and tombstoned once superseded.
//!
//! The layouts differ only in the chunk keys (a `key(index)` function for one save's
//! generation) and in the partition the chunks go to.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::future::try_join_all;
use kafka_persistence_wire::{self as wire, Client, FetchRequest, Producer, Record};
use tracing::warn;

use crate::clock::now_ms;
use crate::error::SnapshotError;
use crate::format::{Corrupt, Manifest};

/// Partition bytes asked for per fetch while reading chunks (at least one batch comes back).
const CHUNK_FETCH_BYTES: usize = 16 * 1024 * 1024;

/// Generations: a fresh 64-bit number per chunked save, unique per store and save, so an
/// overwrite never touches the chunks of the snapshot it replaces.
#[derive(Debug)]
pub(crate) struct Generations {
    seed: u64,
    counter: AtomicU64,
}

impl Generations {
    pub(crate) fn new() -> Self {
        Generations {
            seed: RandomState::new().build_hasher().finish(),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // splitmix64 of seed + counter, mixed with the clock.
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            ^ nanos;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Where the chunks of one save go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkTarget<'a> {
    /// The persistence id (for errors).
    pub(crate) persistence_id: &'a str,
    /// The sequence number (for errors).
    pub(crate) sequence_nr: u64,
    /// The topic.
    pub(crate) topic: &'a str,
    /// The partition holding the chunks.
    pub(crate) partition: i32,
    /// Payload bytes per chunk.
    pub(crate) chunk_size: usize,
}

/// Writes the chunks of `payload` under `generation` (each its own record batch,
/// pipelined) and returns the manifest that commits them. On failure the chunks are
/// tombstoned (best effort).
pub(crate) async fn write(
    producer: &Producer,
    target: ChunkTarget<'_>,
    generation: u64,
    payload: &Bytes,
    key: impl Fn(u32) -> Bytes + Sync,
) -> Result<Manifest, SnapshotError> {
    let chunk_size = target.chunk_size.max(1);
    let count = payload.len().div_ceil(chunk_size).max(1);
    let Ok(count32) = u32::try_from(count) else {
        return Err(SnapshotError::TooLarge {
            persistence_id: target.persistence_id.to_owned(),
            sequence_nr: target.sequence_nr,
            size: payload.len(),
        });
    };
    let now = now_ms();
    let sends = (0..count32).map(|i| {
        let start = i as usize * chunk_size;
        let end = (start + chunk_size).min(payload.len());
        let record = Record {
            key: Some(key(i)),
            value: Some(payload.slice(start..end)),
            headers: Vec::new(),
            timestamp: now,
        };
        producer.send(target.topic, target.partition, vec![record])
    });
    match try_join_all(sends).await {
        Ok(mds) => Ok(Manifest {
            generation,
            partition: target.partition,
            offsets: mds.into_iter().map(|m| m.base_offset).collect(),
            total_length: payload.len() as u64,
            crc32c: crc32c::crc32c(payload),
        }),
        Err(e) => {
            warn!(
                topic = target.topic,
                seq = target.sequence_nr,
                generation,
                error = %e,
                reason = "chunk write failed",
                "tombstoning the chunks of a failed save"
            );
            let records = tombstones(count32, key);
            if let Err(e) = producer.send(target.topic, target.partition, records).await {
                warn!(topic = target.topic, error = %e, reason = "tombstones not written", "chunks of the failed save stay behind");
            }
            Err(e.into())
        }
    }
}

/// Tombstones for `count` chunks keyed by `key`.
pub(crate) fn tombstones(count: u32, key: impl Fn(u32) -> Bytes) -> Vec<Record> {
    let now = now_ms();
    (0..count)
        .map(|i| Record {
            key: Some(key(i)),
            value: None,
            headers: Vec::new(),
            timestamp: now,
        })
        .collect()
}

/// The number of chunks a (decoded, checked) manifest names.
pub(crate) fn count(m: &Manifest) -> u32 {
    u32::try_from(m.offsets.len()).unwrap_or(u32::MAX)
}

/// Reads and checks the chunks of a manifest from `topic`. `Ok(Err(_))`: the stored data
/// is unusable (missing or foreign chunk, wrong length or checksum); `Err(_)`: the read
/// failed.
pub(crate) async fn read(
    client: &Client,
    topic: &str,
    m: &Manifest,
    key: impl Fn(u32) -> Bytes,
) -> Result<Result<Bytes, Corrupt>, SnapshotError> {
    let n = m.offsets.len();
    let mut chunks: Vec<Option<Bytes>> = vec![None; n];
    let mut wanted: HashMap<i64, usize> = HashMap::with_capacity(n);
    for (i, &off) in m.offsets.iter().enumerate() {
        if wanted.insert(off, i).is_some() {
            return Ok(Err(Corrupt(format!("manifest names offset {off} twice"))));
        }
    }
    let mut received = 0_usize;
    let mut next = 0_usize;
    while next < n {
        let offset = m.offsets[next];
        let remaining = usize::try_from(m.total_length)
            .unwrap_or(usize::MAX)
            .saturating_sub(received)
            .saturating_add(64 * 1024)
            .min(CHUNK_FETCH_BYTES);
        let req = FetchRequest::new(topic, m.partition, offset)
            .with_max_bytes(i32::try_from(remaining).unwrap_or(i32::MAX));
        let resp = match client.fetch(req).await {
            Ok(r) => r,
            Err(wire::Error::OffsetOutOfRange { .. }) => {
                return Ok(Err(Corrupt(format!(
                    "chunk {next} at offset {offset} is outside the log"
                ))))
            }
            Err(e) => return Err(e.into()),
        };
        for r in resp.records {
            let Some(&i) = wanted.get(&r.offset) else {
                continue;
            };
            if chunks[i].is_some() {
                continue;
            }
            let expected = key(i as u32);
            if r.key.as_deref() != Some(&expected[..]) {
                return Ok(Err(Corrupt(format!(
                    "offset {} holds a record other than chunk {i}",
                    r.offset
                ))));
            }
            let Some(value) = r.value else {
                return Ok(Err(Corrupt(format!("chunk {i} was deleted"))));
            };
            received = received.saturating_add(value.len());
            if received as u64 > m.total_length {
                return Ok(Err(Corrupt("chunks longer than the manifest says".into())));
            }
            chunks[i] = Some(value);
        }
        if chunks[next].is_none() {
            return Ok(Err(Corrupt(format!(
                "chunk {next} at offset {offset} is missing (compacted or deleted)"
            ))));
        }
        while next < n && chunks[next].is_some() {
            next += 1;
        }
    }
    let mut out = BytesMut::with_capacity(received);
    for c in chunks.into_iter().flatten() {
        out.extend_from_slice(&c);
    }
    let out = out.freeze();
    if out.len() as u64 != m.total_length {
        return Ok(Err(Corrupt(format!(
            "payload is {} bytes, manifest says {}",
            out.len(),
            m.total_length
        ))));
    }
    if crc32c::crc32c(&out) != m.crc32c {
        return Ok(Err(Corrupt("payload checksum mismatch".into())));
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generations_are_distinct() {
        let g = Generations::new();
        let seen: HashSet<u64> = (0..10_000).map(|_| g.next()).collect();
        assert_eq!(seen.len(), 10_000);
    }

    #[test]
    fn tombstones_name_every_chunk() {
        let t = tombstones(3, |i| Bytes::from(vec![i as u8]));
        let keys: Vec<_> = t.iter().map(|r| r.key.clone()).collect();
        assert_eq!(
            keys,
            vec![
                Some(Bytes::from_static(&[0])),
                Some(Bytes::from_static(&[1])),
                Some(Bytes::from_static(&[2]))
            ]
        );
        assert!(t.iter().all(|r| r.value.is_none()));
    }
}
