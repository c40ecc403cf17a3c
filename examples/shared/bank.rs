//! The bank account behaviour the examples share (included with `#[path]`).

use bytes::Bytes;
use kafka_persistence::codec::JsonCodec;
use kafka_persistence::entity::{Behavior, CodecError};
use kafka_persistence::snapshot_policy::SnapshotPolicy;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum AccountEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

#[derive(Debug)]
pub(crate) enum AccountCommand {
    Deposit(u64),
    Withdraw(u64),
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Account {
    pub(crate) balance: u64,
}

pub(crate) struct BankAccount {
    events: JsonCodec<AccountEvent>,
    state: JsonCodec<Account>,
}

impl BankAccount {
    /// The behaviour with its codecs (schema version 1).
    pub(crate) fn new() -> Self {
        BankAccount {
            events: JsonCodec::new("AccountEvent", 1),
            state: JsonCodec::new("Account", 1),
        }
    }
}

impl Behavior for BankAccount {
    type State = Account;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Rejection = String;

    fn handle(
        &self,
        state: &Account,
        command: AccountCommand,
    ) -> Result<Vec<AccountEvent>, String> {
        match command {
            AccountCommand::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
            AccountCommand::Withdraw(amount) if amount > state.balance => {
                Err(format!("insufficient funds: balance {}", state.balance))
            }
            AccountCommand::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount }]),
        }
    }

    fn apply(&self, state: &mut Account, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } => state.balance += amount,
            AccountEvent::Withdrawn { amount } => state.balance -= amount,
        }
    }

    fn encode_event(&self, event: &AccountEvent) -> Result<(String, Bytes), CodecError> {
        self.events.encode(event)
    }
    fn decode_event(&self, manifest: &str, payload: &Bytes) -> Result<AccountEvent, CodecError> {
        self.events.decode(manifest, payload)
    }
    fn encode_state(&self, state: &Account) -> Result<Bytes, CodecError> {
        self.state.encode_state(state)
    }
    fn decode_state(&self, snapshot: &Bytes) -> Result<Account, CodecError> {
        self.state.decode_state(snapshot)
    }
    fn snapshot_policy(&self) -> SnapshotPolicy {
        SnapshotPolicy::every(5)
            .keep_snapshots(2)
            .delete_events(true)
    }
}
