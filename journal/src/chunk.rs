//! Write planning, the same in both layouts: validating and grouping a call's atomic writes by
//! persistence id, and turning one id's atomic writes into record batches ("chunks") that
//! continue its sequence numbers, with gap markers for writes too large to store.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use bytes::Bytes;
use kafka_persistence_wire::record::Record;

use crate::error::WriteError;
use crate::format::{record_size_bound, JournalRecord, BATCH_OVERHEAD};
use crate::repr::{AtomicWrite, PersistentRepr};

/// The broker default `max.message.bytes`, used until a topic's own value is read.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Atomic writes above this estimated size make the journal read the topic's limit.
pub(crate) const DESCRIBE_THRESHOLD: usize = 16 * 1024;
/// The largest record batch the journal builds (the producer's default batch size).
pub(crate) const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// A write's events of one id, sent as one record batch.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Indices (into the caller's writes) of the atomic writes stored in this batch.
    pub(crate) indices: Vec<usize>,
    /// The Kafka records.
    pub(crate) records: Vec<Record>,
    /// The records without payloads, to advance the verified state without reading.
    pub(crate) stubs: Vec<JournalRecord>,
    /// The estimated encoded size.
    pub(crate) size: usize,
}

/// One atomic write's result as planned, with the events to publish if it is stored.
pub(crate) type Planned = (usize, Result<(), WriteError>, Vec<PersistentRepr>);

/// One id's atomic writes in a call, with their indices into the caller's writes (never
/// empty: the id is its first write's).
pub(crate) type IdWrites = Vec<(usize, AtomicWrite)>;

/// The persistence id of one id's [`IdWrites`].
pub(crate) fn id_of(writes: &[(usize, AtomicWrite)]) -> &str {
    writes.first().map_or("", |(_, w)| w.persistence_id())
}

/// A call's writes grouped by id, in first-appearance order, and the results of invalid ones.
pub(crate) struct Grouped {
    /// Results decided while grouping (invalid writes); the rest are filled in later.
    pub(crate) results: Vec<Option<Result<(), WriteError>>>,
    /// Per id, its atomic writes (see [`id_of`]).
    pub(crate) ids: Vec<IdWrites>,
}

/// Validates `writes` and groups them by persistence id (first-appearance order). No id is
/// copied: the table of places holds indices and compares against each group's first write.
pub(crate) fn group(writes: Vec<AtomicWrite>) -> Grouped {
    let mut results: Vec<Option<Result<(), WriteError>>> = vec![None; writes.len()];
    let mut ids: Vec<IdWrites> = Vec::new();
    // Id -> its place in `ids`.
    let mut places: HashTable<usize> = HashTable::new();
    let hasher = crate::hash::IdHashBuilder::default();
    for (i, w) in writes.into_iter().enumerate() {
        if let Err(reason) = w.validate() {
            results[i] = Some(Err(WriteError::Invalid(reason)));
            continue;
        }
        let pid = w.persistence_id();
        // Consecutive writes of one id (a call of one id never hashes).
        if ids.last().is_some_and(|last| id_of(last) == pid) {
            if let Some(last) = ids.last_mut() {
                last.push((i, w));
            }
            continue;
        }
        if ids.is_empty() {
            ids.push(vec![(i, w)]);
            continue;
        }
        if places.is_empty() {
            // The first id was never entered (a call of one id never hashes).
            places.insert_unique(hasher.hash_one(id_of(&ids[0])), 0, |&k| {
                hasher.hash_one(id_of(&ids[k]))
            });
        }
        let hash = hasher.hash_one(pid);
        match places.find(hash, |&k| id_of(&ids[k]) == pid) {
            Some(&k) => ids[k].push((i, w)),
            None => {
                places.insert_unique(hash, ids.len(), |&k| hasher.hash_one(id_of(&ids[k])));
                ids.push(vec![(i, w)]);
            }
        }
    }
    Grouped { results, ids }
}

/// Fills in the results of a call from the planned outcomes; an unfilled one (cannot happen)
/// is reported as invalid rather than dropped.
pub(crate) fn finish(
    mut results: Vec<Option<Result<(), WriteError>>>,
    planned: impl IntoIterator<Item = Planned>,
    published: &mut Vec<PersistentRepr>,
) -> Vec<Result<(), WriteError>> {
    for (i, r, events) in planned {
        if r.is_ok() {
            published.extend(events);
        }
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(r);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(WriteError::Invalid("not processed".into()))))
        .collect()
}

/// An upper bound of the encoded size of one atomic write's records.
pub(crate) fn write_size(w: &AtomicWrite) -> usize {
    let pid_len = w.persistence_id().len();
    w.events
        .iter()
        .map(|e| {
            let value = 64
                + e.payload.len()
                + e.manifest.len()
                + e.writer_uuid.len()
                + e.metadata.as_ref().map_or(0, |m| m.len())
                + e.tags.iter().map(|t| t.len() + 2).sum::<usize>();
            record_size_bound(pid_len, value)
        })
        .sum()
}

/// One id's atomic writes turned into chunks.
pub(crate) struct ChunkPlan {
    /// Per atomic write: its planned result (fenced and rejected ones decided here).
    pub(crate) out: Vec<Planned>,
    /// The record batches to send, in order.
    pub(crate) chunks: Vec<Chunk>,
    /// The highest sequence number after them.
    pub(crate) highest: u64,
}

/// Plans the atomic writes of `persistence_id` continuing `highest`: a write whose first
/// sequence number is not highest + 1 is fenced; one larger than `limit` becomes a gap
/// marker (rejected); the others are packed into chunks of at most `limit` bytes (and
/// [`MAX_CHUNK_BYTES`]). `batch_id` draws a fresh random id per chunk.
pub(crate) fn plan_chunks(
    persistence_id: &str,
    writes: Vec<(usize, AtomicWrite)>,
    mut highest: u64,
    limit: usize,
    timestamp: i64,
    mut batch_id: impl FnMut() -> u64,
) -> ChunkPlan {
    let pid = persistence_id;
    let mut out: Vec<Planned> = Vec::new();
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut current: Option<(Chunk, u64, u64)> = None; // chunk, batch_start, batch_id
    for (i, w) in writes {
        let first = w.lowest_sequence_nr();
        let last = w.highest_sequence_nr();
        if first != highest.saturating_add(1) {
            out.push((
                i,
                Err(WriteError::Fenced {
                    persistence_id: pid.to_string(),
                    sequence_nr: first,
                    expected: highest.saturating_add(1),
                }),
                Vec::new(),
            ));
            continue;
        }
        let size = write_size(&w);
        let rejected = size + BATCH_OVERHEAD > limit;
        let size = if rejected {
            record_size_bound(pid.len(), 48)
        } else {
            size
        };
        let fits = current
            .as_ref()
            .is_some_and(|(c, _, _)| c.size + size <= limit.min(MAX_CHUNK_BYTES));
        if !fits {
            if let Some((c, _, _)) = current.take() {
                chunks.push(c);
            }
            let chunk = Chunk {
                indices: Vec::new(),
                records: Vec::new(),
                stubs: Vec::new(),
                size: BATCH_OVERHEAD,
            };
            current = Some((chunk, first, batch_id()));
        }
        let Some((chunk, batch_start, batch_id)) = current.as_mut() else {
            continue;
        };
        chunk.size += size;
        chunk.indices.push(i);
        if rejected {
            let gap = JournalRecord::gap(first, last, *batch_start, *batch_id);
            chunk.records.push(gap.to_record(pid, timestamp));
            chunk.stubs.push(gap);
            out.push((
                i,
                Err(WriteError::Rejected {
                    persistence_id: pid.to_string(),
                    from: first,
                    to: last,
                    reason: format!(
                        "about {size} bytes exceed the topic's max.message.bytes ({limit})",
                        size = write_size(&w)
                    ),
                }),
                Vec::new(),
            ));
        } else {
            for e in &w.events {
                let rec = JournalRecord::event(e, *batch_start, *batch_id);
                chunk.records.push(rec.to_record(pid, timestamp));
                chunk.stubs.push(JournalRecord {
                    payload: Bytes::new(),
                    metadata: None,
                    tags: Vec::new(),
                    ..rec
                });
            }
            out.push((i, Ok(()), w.events));
        }
        highest = last;
    }
    if let Some((c, _, _)) = current.take() {
        chunks.push(c);
    }
    ChunkPlan {
        out,
        chunks,
        highest,
    }
}

/// Marks the planned writes of the chunks the log did not accept as fenced.
pub(crate) fn mark_fenced(
    out: &mut [Planned],
    fenced: &std::collections::HashSet<usize>,
    persistence_id: &str,
    expected: u64,
) {
    for (i, r, events) in out.iter_mut() {
        if fenced.contains(i) {
            let first = events.first().map_or(0, |e| e.sequence_nr);
            *r = Err(WriteError::Fenced {
                persistence_id: persistence_id.to_string(),
                sequence_nr: first,
                expected,
            });
            events.clear();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn w(pid: &str, seqs: std::ops::RangeInclusive<u64>, payload: usize) -> AtomicWrite {
        AtomicWrite::new(
            seqs.map(|s| PersistentRepr::new(pid, s, vec![b'x'; payload]))
                .collect(),
        )
    }

    #[test]
    fn writes_are_grouped_by_id_in_first_appearance_order() {
        let writes = vec![
            w("a", 1..=1, 1),
            w("a", 2..=2, 1),
            w("b", 1..=1, 1),
            AtomicWrite::new(Vec::new()), // invalid: no events
            w("a", 3..=3, 1),
            w("c", 1..=1, 1),
            w("b", 2..=2, 1),
        ];
        let g = group(writes);
        let ids: Vec<(&str, Vec<usize>)> = g
            .ids
            .iter()
            .map(|ws| (id_of(ws), ws.iter().map(|(i, _)| *i).collect()))
            .collect();
        assert_eq!(
            ids,
            vec![("a", vec![0, 1, 4]), ("b", vec![2, 6]), ("c", vec![5])]
        );
        assert!(matches!(g.results[3], Some(Err(WriteError::Invalid(_)))));
        assert_eq!(g.results.iter().filter(|r| r.is_none()).count(), 6);
    }

    #[test]
    fn writes_are_packed_fenced_and_rejected() {
        let writes = vec![
            (0, w("p", 1..=1, 10)),
            (1, w("p", 2..=3, 10)),
            (2, w("p", 5..=5, 10)),      // fenced: 4 expected
            (3, w("p", 4..=4, 100_000)), // rejected: too large for 10 KB
            (4, w("p", 5..=5, 10)),
        ];
        let mut n = 0;
        let plan = plan_chunks("p", writes, 0, 10_000, 1, || {
            n += 1;
            n
        });
        assert_eq!(plan.highest, 5);
        assert_eq!(plan.chunks.len(), 1, "everything fits one chunk");
        let c = &plan.chunks[0];
        assert_eq!(c.indices, vec![0, 1, 3, 4]);
        // events 1, 2, 3, gap 4, event 5
        assert_eq!(c.records.len(), 5);
        assert_eq!(c.stubs[3].kind, crate::format::KIND_GAP);
        assert!(c
            .stubs
            .iter()
            .all(|s| s.batch_start == 1 && s.batch_id == 1));
        let results: Vec<_> = plan.out.iter().map(|(i, r, _)| (*i, r.is_ok())).collect();
        assert_eq!(
            results,
            vec![(0, true), (1, true), (2, false), (3, false), (4, true)]
        );
        assert!(matches!(
            plan.out[2].1,
            Err(WriteError::Fenced { expected: 4, .. })
        ));
        assert!(matches!(
            plan.out[3].1,
            Err(WriteError::Rejected { from: 4, to: 4, .. })
        ));
    }

    #[test]
    fn chunks_respect_the_limit() {
        let writes = (1..=10).map(|s| (s as usize, w("p", s..=s, 400))).collect();
        let mut n = 0;
        let plan = plan_chunks("p", writes, 0, 1_000, 1, || {
            n += 1;
            n
        });
        assert!(plan.chunks.len() >= 5, "{}", plan.chunks.len());
        for c in &plan.chunks {
            assert!(c.size <= 1_000, "{}", c.size);
            // a chunk's batch_start is its first record's sequence number
            assert_eq!(c.stubs[0].batch_start, c.stubs[0].sequence_nr);
        }
    }
}
