//! The serde codec end to end: events written by an older version of an event type (and by
//! code from before the codec) are upcast on recovery; a snapshot of an older state type
//! falls back to a full replay; without an upcaster recovery fails with a clear error.

mod common;

use common::{broker, unique_pid};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use kafka_persistence::codec::{JsonCodec, Manifest};
use kafka_persistence::entities::{Entities, EntitiesConfig};
use kafka_persistence::entity::{Behavior, CodecError, Entity, EntityError, Handled};
use kafka_persistence::journal::{AtomicWrite, PersistentRepr};
use kafka_persistence::snapshot::SnapshotSelectionCriteria;

// ---- version 1 of the account: one currency, state is the balance ----

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum AccountEventV1 {
    Deposited { amount: u64 },
}

struct AccountV1 {
    events: JsonCodec<AccountEventV1>,
    state: JsonCodec<u64>,
}

impl Behavior for AccountV1 {
    type State = u64;
    type Command = u64;
    type Event = AccountEventV1;
    type Rejection = String;

    fn handle(&self, _: &u64, amount: u64) -> Result<Vec<AccountEventV1>, String> {
        Ok(vec![AccountEventV1::Deposited { amount }])
    }
    fn apply(&self, balance: &mut u64, AccountEventV1::Deposited { amount }: &AccountEventV1) {
        *balance += amount;
    }
    fn encode_event(&self, e: &AccountEventV1) -> Result<(String, Bytes), CodecError> {
        self.events.encode(e)
    }
    fn decode_event(&self, m: &str, p: &Bytes) -> Result<AccountEventV1, CodecError> {
        self.events.decode(m, p)
    }
    fn encode_state(&self, s: &u64) -> Result<Bytes, CodecError> {
        self.state.encode_state(s)
    }
    fn decode_state(&self, s: &Bytes) -> Result<u64, CodecError> {
        self.state.decode_state(s)
    }
    fn snapshot_every(&self) -> Option<u64> {
        Some(2)
    }
}

// ---- version 2: amounts carry a currency, state is a balance per currency ----

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum AccountEvent {
    Deposited { amount: u64, currency: String },
}

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Balances {
    by_currency: BTreeMap<String, u64>,
}

struct AccountV2 {
    events: JsonCodec<AccountEvent>,
    state: JsonCodec<Balances>,
}

fn upcast(manifest: &Manifest, payload: &Bytes) -> Result<AccountEvent, CodecError> {
    match (manifest.type_name.as_str(), manifest.version) {
        ("AccountEvent", 1) => {
            let AccountEventV1::Deposited { amount } = JsonCodec::<AccountEventV1>::parse(payload)?;
            Ok(AccountEvent::Deposited {
                amount,
                currency: "EUR".into(),
            })
        }
        // Written before the codec: manifest "amount", the amount as text.
        ("amount", 0) => std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(|amount| AccountEvent::Deposited {
                amount,
                currency: "DEM".into(),
            })
            .ok_or_else(|| CodecError::new("not an amount")),
        _ => Err(CodecError::new(format!("cannot upcast {manifest}"))),
    }
}

impl AccountV2 {
    fn new(with_upcaster: bool) -> Self {
        let events = JsonCodec::new("AccountEvent", 2);
        AccountV2 {
            events: if with_upcaster {
                events.with_upcaster(upcast)
            } else {
                events
            },
            state: JsonCodec::new("Balances", 2),
        }
    }
}

impl Behavior for AccountV2 {
    type State = Balances;
    type Command = (u64, String);
    type Event = AccountEvent;
    type Rejection = String;

    fn handle(
        &self,
        _: &Balances,
        (amount, currency): (u64, String),
    ) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![AccountEvent::Deposited { amount, currency }])
    }
    fn apply(
        &self,
        state: &mut Balances,
        AccountEvent::Deposited { amount, currency }: &AccountEvent,
    ) {
        *state.by_currency.entry(currency.clone()).or_default() += amount;
    }
    fn encode_event(&self, e: &AccountEvent) -> Result<(String, Bytes), CodecError> {
        self.events.encode(e)
    }
    fn decode_event(&self, m: &str, p: &Bytes) -> Result<AccountEvent, CodecError> {
        self.events.decode(m, p)
    }
    fn encode_state(&self, s: &Balances) -> Result<Bytes, CodecError> {
        self.state.encode_state(s)
    }
    fn decode_state(&self, s: &Bytes) -> Result<Balances, CodecError> {
        self.state.decode_state(s)
    }
}

#[tokio::test]
async fn events_of_an_older_version_are_upcast_and_an_old_snapshot_falls_back_to_replay() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("upcast");
    // Version 1 writes three events (and a version-1 snapshot at 2).
    let v1 = AccountV1 {
        events: JsonCodec::new("AccountEvent", 1),
        state: JsonCodec::new("Balance", 1),
    };
    let mut old = Entity::recover(Arc::clone(&journal), Arc::clone(&store), pid.clone(), v1)
        .await
        .expect("v1");
    for amount in 1..=3 {
        old.handle(amount).await.expect("v1 deposit");
    }
    drop(old);
    let snapshot = store
        .load(&pid, SnapshotSelectionCriteria::latest())
        .await
        .expect("load")
        .expect("v1 snapshot");
    assert_eq!(snapshot.metadata.sequence_nr, 2);
    assert_eq!(snapshot.snapshot, Bytes::from("3"));
    // An old tool appends an event in the format from before the codec.
    let legacy = PersistentRepr::new(pid.clone(), 4, "7").with_manifest("amount");
    assert_eq!(
        journal
            .write(vec![AtomicWrite::new(vec![legacy])])
            .await
            .expect("write"),
        vec![Ok(())]
    );

    // Version 2 cannot read the v1 snapshot (another state type): full replay, upcasting.
    let accounts = Entities::new(
        Arc::clone(&journal),
        Arc::clone(&store),
        AccountV2::new(true),
        EntitiesConfig::default().with_ask_timeout(Duration::from_secs(30)),
    );
    let handle = accounts.entity(pid.clone());
    assert_eq!(
        handle.ask((10, "USD".into())).await.expect("v2 deposit"),
        Handled::Persisted { sequence_nr: 5 }
    );
    let balances = handle
        .state(|b: &Balances| b.by_currency.clone())
        .await
        .expect("state");
    let expected: BTreeMap<String, u64> = [("DEM", 7), ("EUR", 6), ("USD", 10)]
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect();
    assert_eq!(balances, expected);
    let manifests: Vec<String> = journal
        .replay(&pid, 1, u64::MAX, u64::MAX)
        .map_ok(|e| e.manifest)
        .try_collect()
        .await
        .expect("replay");
    assert_eq!(
        manifests,
        [
            "AccountEvent@1",
            "AccountEvent@1",
            "AccountEvent@1",
            "amount",
            "AccountEvent@2"
        ]
    );
}

#[tokio::test]
async fn without_an_upcaster_recovery_fails_naming_both_manifests() {
    let broker = broker().await;
    let (journal, store) = broker.parts().await;
    let pid = unique_pid("no-upcaster");
    let v1 = AccountV1 {
        events: JsonCodec::new("AccountEvent", 1),
        state: JsonCodec::new("Balance", 1),
    };
    let mut old = Entity::recover(Arc::clone(&journal), Arc::clone(&store), pid.clone(), v1)
        .await
        .expect("v1");
    old.handle(1).await.expect("v1 deposit");
    let accounts = Entities::new(
        journal,
        store,
        AccountV2::new(false),
        EntitiesConfig::default(),
    );
    match accounts.ask(&pid, (1, "EUR".into())).await {
        Err(EntityError::Decode {
            sequence_nr,
            source,
            ..
        }) => {
            assert_eq!(sequence_nr, 1);
            let message = source.to_string();
            assert!(
                message.contains("AccountEvent@1") && message.contains("AccountEvent@2"),
                "{message}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(!accounts.is_running(&pid));
    assert_eq!(accounts.stats().failed, 1);
}
