//! A bank account on the serde JSON codec: the behaviour the entity-runtime tests share.

use bytes::Bytes;
use kafka_persistence::codec::JsonCodec;
use kafka_persistence::entity::{Behavior, CodecError};
use kafka_persistence::snapshot_policy::SnapshotPolicy;

/// An event of the account (schema version 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum AccountEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

/// The account's state: the balance and every amount in the order applied.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Balance {
    pub(crate) balance: u64,
    pub(crate) history: Vec<i64>,
}

/// A command to the account.
#[derive(Debug)]
pub(crate) enum AccountCommand {
    Deposit(u64),
    Withdraw(u64),
    /// Two events, stored atomically.
    Transfer {
        fee: u64,
        amount: u64,
    },
}

/// The account behaviour.
pub(crate) struct Account {
    events: JsonCodec<AccountEvent>,
    state: JsonCodec<Balance>,
    policy: SnapshotPolicy,
}

impl Account {
    pub(crate) fn new(policy: SnapshotPolicy) -> Self {
        Account {
            events: JsonCodec::new("AccountEvent", 1),
            state: JsonCodec::new("Balance", 1),
            policy,
        }
    }
}

impl Behavior for Account {
    type State = Balance;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Rejection = String;

    fn handle(
        &self,
        state: &Balance,
        command: AccountCommand,
    ) -> Result<Vec<AccountEvent>, String> {
        match command {
            AccountCommand::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
            AccountCommand::Withdraw(amount) if amount > state.balance => {
                Err(format!("balance {} < {amount}", state.balance))
            }
            AccountCommand::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount }]),
            AccountCommand::Transfer { fee, amount } if fee + amount > state.balance => {
                Err("overdraft".to_string())
            }
            AccountCommand::Transfer { fee, amount } => Ok(vec![
                AccountEvent::Withdrawn { amount: fee },
                AccountEvent::Withdrawn { amount },
            ]),
        }
    }

    fn apply(&self, state: &mut Balance, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } => {
                state.balance += amount;
                state.history.push(*amount as i64);
            }
            AccountEvent::Withdrawn { amount } => {
                state.balance = state.balance.saturating_sub(*amount);
                state.history.push(-(*amount as i64));
            }
        }
    }

    fn encode_event(&self, event: &AccountEvent) -> Result<(String, Bytes), CodecError> {
        self.events.encode(event)
    }

    fn decode_event(&self, manifest: &str, payload: &Bytes) -> Result<AccountEvent, CodecError> {
        self.events.decode(manifest, payload)
    }

    fn encode_state(&self, state: &Balance) -> Result<Bytes, CodecError> {
        self.state.encode_state(state)
    }

    fn decode_state(&self, snapshot: &Bytes) -> Result<Balance, CodecError> {
        self.state.decode_state(snapshot)
    }

    fn snapshot_policy(&self) -> SnapshotPolicy {
        self.policy
    }
}
