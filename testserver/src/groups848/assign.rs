//! The server-side assignors of the consumer group protocol (KIP-848): `uniform` (balanced
//! over all subscribed partitions, sticky) and `range` (per topic, contiguous ranges over the
//! members subscribed to it, sorted by member id). Pure functions of the members'
//! subscriptions, the topics' partition counts and the current target assignment.

use std::collections::{BTreeMap, BTreeSet};

/// A member's partitions: topic name → partition indexes.
pub(crate) type Partitions = BTreeMap<String, BTreeSet<i32>>;

/// The assignors this coordinator offers, the first being the default.
pub(crate) const ASSIGNORS: &[&str] = &["uniform", "range"];

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub(crate) struct AssignMember<'a> {
    pub(crate) id: &'a str,
    pub(crate) topics: &'a BTreeSet<String>,
    /// Its current target partitions (for stickiness).
    pub(crate) current: &'a Partitions,
}

/// Runs assignor `name` (one of [`ASSIGNORS`]); `None` for an unknown name.
pub(crate) fn assign(
    name: &str,
    members: &[AssignMember<'_>],
    partitions: &BTreeMap<String, i32>,
) -> Option<BTreeMap<String, Partitions>> {
    match name {
        "uniform" => Some(uniform(members, partitions)),
        "range" => Some(range(members, partitions)),
        _ => None,
    }
}

/// Per topic: partitions split into contiguous ranges over the subscribed members in member
/// id order, the first `n % m` members getting one more.
pub(crate) fn range(
    members: &[AssignMember<'_>],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Partitions> {
    let mut out: BTreeMap<String, Partitions> = members
        .iter()
        .map(|m| (m.id.to_owned(), Partitions::new()))
        .collect();
    for (topic, &count) in partitions {
        let mut subs: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.id)
            .collect();
        subs.sort_unstable();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let m = i32::try_from(subs.len()).unwrap_or(i32::MAX);
        let (each, extra) = (count / m, count % m);
        let mut next = 0;
        for (i, id) in subs.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let n = each + i32::from(i < extra);
            let set = out
                .entry((*id).to_owned())
                .or_default()
                .entry(topic.clone())
                .or_default();
            set.extend(next..next + n);
            next += n;
        }
    }
    drop_empty(&mut out);
    out
}

/// Balanced over every subscribed partition, keeping each member's current partitions while
/// that keeps the member within its share, then moving partitions from the fullest to the
/// emptiest eligible member until no move narrows the spread.
pub(crate) fn uniform(
    members: &[AssignMember<'_>],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Partitions> {
    let mut sorted: Vec<&AssignMember<'_>> = members.iter().collect();
    sorted.sort_by_key(|m| m.id);
    let eligible =
        |m: &AssignMember<'_>, t: &str| m.topics.contains(t) && partitions.contains_key(t);
    // Every partition some member subscribes to.
    let all: Vec<(String, i32)> = partitions
        .iter()
        .filter(|(t, _)| sorted.iter().any(|m| m.topics.contains(*t)))
        .flat_map(|(t, &n)| (0..n.max(0)).map(move |p| (t.clone(), p)))
        .collect();
    let share = |m: &AssignMember<'_>| -> usize {
        // Its partitions over the members that could share them, rounded up.
        let mine: Vec<&(String, i32)> = all.iter().filter(|(t, _)| eligible(m, t)).collect();
        let sharing = sorted
            .iter()
            .filter(|o| mine.iter().any(|(t, _)| o.topics.contains(t)))
            .count()
            .max(1);
        mine.len().div_ceil(sharing)
    };
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut counts = vec![0usize; sorted.len()];
    for (i, m) in sorted.iter().enumerate() {
        let quota = share(m);
        for (t, ps) in m.current {
            if !eligible(m, t) {
                continue;
            }
            for &p in ps {
                let key = (t.clone(), p);
                if counts[i] < quota
                    && p < partitions.get(t).copied().unwrap_or(0)
                    && !owner.contains_key(&key)
                {
                    owner.insert(key, i);
                    counts[i] += 1;
                }
            }
        }
    }
    for (t, p) in &all {
        let key = (t.clone(), *p);
        if owner.contains_key(&key) {
            continue;
        }
        let best = sorted
            .iter()
            .enumerate()
            .filter(|(_, m)| eligible(m, t))
            .min_by_key(|(i, _)| (counts[*i], *i))
            .map(|(i, _)| i);
        if let Some(i) = best {
            owner.insert(key, i);
            counts[i] += 1;
        }
    }
    // Balance: move one partition from a member to an eligible one with at least two fewer.
    loop {
        let mut moved = false;
        let keys: Vec<(String, i32)> = owner.keys().cloned().collect();
        for key in keys {
            let Some(&from) = owner.get(&key) else {
                continue;
            };
            let to = sorted
                .iter()
                .enumerate()
                .filter(|(i, m)| *i != from && eligible(m, &key.0) && counts[*i] + 1 < counts[from])
                .min_by_key(|(i, _)| (counts[*i], *i))
                .map(|(i, _)| i);
            if let Some(to) = to {
                owner.insert(key, to);
                counts[from] -= 1;
                counts[to] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Partitions> = sorted
        .iter()
        .map(|m| (m.id.to_owned(), Partitions::new()))
        .collect();
    for ((t, p), i) in owner {
        out.entry(sorted[i].id.to_owned())
            .or_default()
            .entry(t)
            .or_default()
            .insert(p);
    }
    drop_empty(&mut out);
    out
}

fn drop_empty(out: &mut BTreeMap<String, Partitions>) {
    for ps in out.values_mut() {
        ps.retain(|_, s| !s.is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn count(p: &Partitions) -> usize {
        p.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let topics: BTreeSet<String> = ["a".to_owned()].into();
        let parts: BTreeMap<String, i32> = [("a".to_owned(), 6)].into();
        let empty = Partitions::new();
        let one = [AssignMember {
            id: "m1",
            topics: &topics,
            current: &empty,
        }];
        let first = uniform(&one, &parts);
        assert_eq!(count(&first["m1"]), 6);
        // A second member takes half, and m1 keeps the other half of what it had.
        let two = [
            AssignMember {
                id: "m1",
                topics: &topics,
                current: &first["m1"],
            },
            AssignMember {
                id: "m2",
                topics: &topics,
                current: &empty,
            },
        ];
        let second = uniform(&two, &parts);
        assert_eq!(count(&second["m1"]), 3);
        assert_eq!(count(&second["m2"]), 3);
        assert!(second["m1"]["a"].is_subset(&first["m1"]["a"]));
        assert!(second["m1"]["a"].is_disjoint(&second["m2"]["a"]));
        // Three members over 6: two each, every partition once.
        let third_in = [
            AssignMember {
                id: "m1",
                topics: &topics,
                current: &second["m1"],
            },
            AssignMember {
                id: "m2",
                topics: &topics,
                current: &second["m2"],
            },
            AssignMember {
                id: "m3",
                topics: &topics,
                current: &empty,
            },
        ];
        let third = uniform(&third_in, &parts);
        let mut all = BTreeSet::new();
        for m in ["m1", "m2", "m3"] {
            assert_eq!(count(&third[m]), 2, "{third:?}");
            for p in &third[m]["a"] {
                assert!(all.insert(*p));
            }
        }
        assert!(third["m1"]["a"].is_subset(&second["m1"]["a"]));
        assert!(third["m2"]["a"].is_subset(&second["m2"]["a"]));
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let ab: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        let b: BTreeSet<String> = ["b".to_owned()].into();
        let parts: BTreeMap<String, i32> = [("a".to_owned(), 3), ("b".to_owned(), 1)].into();
        let empty = Partitions::new();
        let ms = [
            AssignMember {
                id: "x",
                topics: &ab,
                current: &empty,
            },
            AssignMember {
                id: "y",
                topics: &b,
                current: &empty,
            },
        ];
        let out = uniform(&ms, &parts);
        assert_eq!(out["x"]["a"].len(), 3);
        assert_eq!(out["y"]["b"], BTreeSet::from([0]));
        assert!(!out["x"].contains_key("b"));
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let t: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        let parts: BTreeMap<String, i32> = [("a".to_owned(), 5), ("b".to_owned(), 2)].into();
        let empty = Partitions::new();
        let ms = [
            AssignMember {
                id: "m2",
                topics: &t,
                current: &empty,
            },
            AssignMember {
                id: "m1",
                topics: &t,
                current: &empty,
            },
        ];
        let out = range(&ms, &parts);
        assert_eq!(out["m1"]["a"], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["m2"]["a"], BTreeSet::from([3, 4]));
        assert_eq!(out["m1"]["b"], BTreeSet::from([0]));
        assert_eq!(out["m2"]["b"], BTreeSet::from([1]));
        assert!(assign("nope", &ms, &parts).is_none());
    }
}
