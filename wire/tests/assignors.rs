//! Properties of the assignors over random groups (proptest): no partition is assigned
//! twice, only subscribers get a topic's partitions, a free partition is always assigned, and
//! cooperative-sticky never hands a partition to a new owner in the round its owner still has
//! it (KIP-429), while keeping every owner's partitions within its quota.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_persistence_wire::consumer::{
    cooperative_sticky, range, round_robin, MemberSubscription, TopicPartition,
};
use proptest::prelude::*;

const TOPICS: [&str; 3] = ["a", "b", "c"];

fn group() -> impl Strategy<Value = (Vec<MemberSubscription>, BTreeMap<String, i32>)> {
    let partitions = proptest::collection::vec(0i32..7, 3);
    let members = proptest::collection::vec(
        (
            proptest::collection::vec(any::<bool>(), 3),
            proptest::collection::vec((0usize..3, 0i32..7), 0..6),
            0i32..3,
        ),
        1..6,
    );
    (partitions, members).prop_map(|(counts, members)| {
        let partitions: BTreeMap<String, i32> = TOPICS
            .iter()
            .zip(counts)
            .map(|(t, n)| (t.to_string(), n))
            .collect();
        let members = members
            .into_iter()
            .enumerate()
            .map(|(i, (subs, owned, generation))| {
                let mut topics: Vec<String> = TOPICS
                    .iter()
                    .zip(subs)
                    .filter(|(_, s)| *s)
                    .map(|(t, _)| t.to_string())
                    .collect();
                if topics.is_empty() {
                    topics.push("a".to_owned());
                }
                MemberSubscription {
                    member_id: format!("m{i}"),
                    instance_id: None,
                    topics,
                    owned: owned
                        .into_iter()
                        .map(|(t, p)| TopicPartition::new(TOPICS[t], p))
                        .collect(),
                    generation,
                }
            })
            .collect();
        (members, partitions)
    })
}

fn check_common(
    name: &str,
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
    result: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeSet<TopicPartition> {
    let mut seen = BTreeSet::new();
    for (m, list) in result {
        let sub = members
            .iter()
            .find(|x| &x.member_id == m)
            .expect("known member");
        for tp in list {
            assert!(seen.insert(tp.clone()), "{name}: {tp} assigned twice");
            assert!(
                sub.topics.contains(&tp.topic),
                "{name}: {m} not subscribed to {tp}"
            );
            let n = partitions.get(&tp.topic).copied().unwrap_or(0);
            assert!(
                (0..n).contains(&tp.partition),
                "{name}: {tp} does not exist"
            );
        }
    }
    seen
}

fn all_subscribed(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeSet<TopicPartition> {
    partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(t)))
        .flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect()
}

proptest! {
    #[test]
    fn eager_assignors_assign_every_partition_once((members, partitions) in group()) {
        let want = all_subscribed(&members, &partitions);
        for (name, r) in [("range", range(&members, &partitions)), ("roundrobin", round_robin(&members, &partitions))] {
            let seen = check_common(name, &members, &partitions, &r);
            prop_assert_eq!(&seen, &want, "{}", name);
        }
    }

    #[test]
    fn cooperative_sticky_never_moves_an_owned_partition_in_one_round((members, partitions) in group()) {
        let r = cooperative_sticky(&members, &partitions);
        let seen = check_common("cooperative-sticky", &members, &partitions, &r);
        // The valid owner of each partition: the claim of the highest generation.
        let want = all_subscribed(&members, &partitions);
        let mut owner: HashMap<TopicPartition, (String, i32)> = HashMap::new();
        for m in &members {
            for tp in &m.owned {
                if !want.contains(tp) || !m.topics.contains(&tp.topic) {
                    continue;
                }
                let better = owner.get(tp).is_none_or(|(_, g)| m.generation > *g);
                if better {
                    owner.insert(tp.clone(), (m.member_id.clone(), m.generation));
                }
            }
        }
        for (m, list) in &r {
            for tp in list {
                if let Some((o, _)) = owner.get(tp) {
                    prop_assert_eq!(o, m, "{} handed from {} to {} in one round", tp, o, m);
                }
            }
        }
        // Free partitions (nobody owns them) are all assigned.
        for tp in want.iter().filter(|tp| !owner.contains_key(*tp)) {
            prop_assert!(seen.contains(tp), "free partition {} unassigned", tp);
        }
        // With no owned partitions at all, it is a complete assignment.
        if members.iter().all(|m| m.owned.is_empty()) {
            prop_assert_eq!(&seen, &want);
        }
    }
}
