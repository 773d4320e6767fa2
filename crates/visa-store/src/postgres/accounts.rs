//! A bound on the pooled connections one account's money-path writes may hold at once. Calls
//! of one account queue on its row locks in the database anyway (every hold and settlement
//! locks the account's balance), so past a few of them more connections buy nothing; and
//! when the locks are held up (another node stalled mid-transaction), the calls waiting on
//! them must not take every connection of the pool from the other accounts' calls.

use crate::{StoreError, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most this many: a stalled node's queued sessions each take the locks in turn and hold them
/// for `idle_in_transaction_session_timeout`, so the other nodes wait that long per session.
const MOST_PER_ACCOUNT: usize = 3;

pub(super) struct AccountLimits {
    per_account: usize,
    turns: Arc<Mutex<HashMap<i64, Arc<Semaphore>>>>,
}

/// One account's turn; gives its place back when dropped (and forgets the account when no
/// call of it is left).
pub(super) struct Turn {
    account: i64,
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    turns: Arc<Mutex<HashMap<i64, Arc<Semaphore>>>>,
}

impl AccountLimits {
    /// A quarter of the pool per account, between one and `MOST_PER_ACCOUNT` connections.
    pub fn new(pool_size: usize) -> Self {
        Self { per_account: (pool_size / 4).clamp(1, MOST_PER_ACCOUNT), turns: Arc::default() }
    }

    /// Waits (at most `patience`) for a turn of `account`.
    pub async fn acquire(&self, account: i64, patience: Duration) -> StoreResult<Turn> {
        let semaphore = {
            let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            turns.entry(account).or_insert_with(|| Arc::new(Semaphore::new(self.per_account))).clone()
        };
        let mut turn = Turn { account, semaphore: semaphore.clone(), permit: None, turns: self.turns.clone() };
        let permit = tokio::time::timeout(patience, semaphore.acquire_owned()).await.map_err(|_| {
            StoreError::Unavailable(
                "this account's calls are queued on its locks in the database; retry shortly".into(),
            )
        })?;
        turn.permit = Some(permit.map_err(|_| StoreError::Unavailable("the connection pool is closed".into()))?);
        Ok(turn)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.turns.lock().unwrap().len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.permit.take();
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and this one: nobody else waits for or holds a turn.
        if Arc::strong_count(&self.semaphore) == 2 {
            turns.remove(&self.account);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn one_account_takes_at_most_its_share_and_others_are_not_held_up() {
        let limits = super::AccountLimits::new(16);
        let held: Vec<_> = take_turns(&limits, 7, 3).await;
        let fourth = limits.acquire(7, Duration::from_millis(50)).await;
        assert!(fourth.is_err(), "a fourth turn of one account waits");
        let other = limits.acquire(8, Duration::from_millis(50)).await;
        assert!(other.is_ok(), "another account's turn does not wait");
        drop(other);
        drop(held);
        assert_eq!(limits.tracked(), 0, "accounts with no call are forgotten");
        assert!(limits.acquire(7, Duration::from_millis(50)).await.is_ok());
    }

    async fn take_turns(limits: &super::AccountLimits, account: i64, n: usize) -> Vec<super::Turn> {
        let mut turns = vec![];
        for _ in 0..n {
            turns.push(limits.acquire(account, Duration::from_millis(50)).await.unwrap());
        }
        turns
    }
}
