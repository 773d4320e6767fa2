//! The one decision of a hold, for a call alone (`super::begin`) and for many in one
//! transaction (`super::batch`): the key's rate-limit turn, its gate (secret, expiry, source IP,
//! tool, account, read-only) and its caps and the account's balance — against what the hold's
//! transaction read, plus the holds already admitted before it in that transaction. So a batch
//! decides each call exactly as the same calls one after another would be decided.

use super::HoldState;
use crate::model::{AccountId, ExecutionStart, HoldRefusal, KeyId, RateClock};
use crate::rules::{self, KeyGate};
use crate::sql::to_db;
use std::collections::{BTreeMap, HashMap};
use visa_core::money::Micros;

/// The room of every key, end user and account a transaction has decided holds on so far.
#[derive(Default)]
pub(super) struct Rooms {
    pub keys: HashMap<KeyId, KeyRoom>,
    pub end_users: HashMap<(KeyId, String), EndUserRoom>,
    pub accounts: HashMap<AccountId, AccountRoom>,
}

/// An end user's counters of one key as read, and what the transaction's admitted holds added.
pub(super) struct EndUserRoom {
    spent_total: i64,
    held_total: i64,
    /// Per day: captured and held, as read plus what was added.
    days: HashMap<i64, (i64, i64)>,
    /// Held by the admitted holds, per day (their sum is what the total gained).
    pub held_added_by_day: BTreeMap<i64, i64>,
}

/// A key's counters as read, and what the transaction's admitted holds added to them.
pub(super) struct KeyRoom {
    pub rate_tat: i64,
    /// Whether a call took a rate-limit turn (the state to write back).
    pub rate_moved: bool,
    pub latest_day: i64,
    spent_total: i64,
    held_total: i64,
    /// Per day: captured and held, as read plus what was added.
    days: HashMap<i64, (i64, i64)>,
    /// Held by the admitted holds: in total and per day.
    pub held_added: i64,
    pub held_added_by_day: BTreeMap<i64, i64>,
}

/// An account's available balance as read, less what the admitted holds took.
pub(super) struct AccountRoom {
    available: i64,
    pub held_added: i64,
}

/// The key's room, from what the hold's transaction read if this is its first call there.
fn key_room<'r>(keys: &'r mut HashMap<KeyId, KeyRoom>, start: &ExecutionStart, held: &HoldState) -> &'r mut KeyRoom {
    let room = keys.entry(start.key_id).or_insert_with(|| KeyRoom {
        rate_tat: held.rate_tat,
        rate_moved: false,
        latest_day: held.latest_day,
        spent_total: held.spent_total,
        held_total: held.held_total,
        days: HashMap::new(),
        held_added: 0,
        held_added_by_day: BTreeMap::new(),
    });
    // The read's day counters (the SELECT read the later of the stored latest day and the
    // call's own), unless an earlier hold of this transaction already counted on that day.
    let read_day = rules::hold_day(start.day_number, held.latest_day);
    room.days.entry(read_day).or_insert((held.spent_day, held.held_day));
    room
}

/// The room of the call's end user, from what the hold's transaction read if this is the first
/// call of that end user there; `None` when the call names none.
fn end_user_room<'r>(
    end_users: &'r mut HashMap<(KeyId, String), EndUserRoom>,
    start: &ExecutionStart,
    held: &HoldState,
) -> Option<&'r mut EndUserRoom> {
    let user = start.end_user.as_ref()?;
    let room = end_users.entry((start.key_id, user.as_str().to_owned())).or_insert_with(|| EndUserRoom {
        spent_total: held.end_user.spent_total.0,
        held_total: held.end_user.held_total.0,
        days: HashMap::new(),
        held_added_by_day: BTreeMap::new(),
    });
    let read_day = rules::hold_day(start.day_number, held.latest_day);
    room.days.entry(read_day).or_insert((held.end_user.spent_day.0, held.end_user.held_day.0));
    Some(room)
}

impl Rooms {
    /// The low-balance thresholds (cents) the hold would take its account's available balance
    /// under, as it stands after the holds admitted before it (none for a sandbox call).
    pub fn low_balance_crossed(&mut self, start: &ExecutionStart, held: &HoldState) -> Vec<i64> {
        if start.sandbox {
            return vec![];
        }
        let account = self.account_room(start, held);
        let before = Micros(account.available);
        let after = Micros(account.available - start.hold.0);
        rules::low_balance_crossed(&held.low_balance_thresholds, &held.low_balance_fired, before, after)
    }

    /// The key's rate-limit turn: the call is admitted (the key's state moves on) or refused
    /// with the seconds after which one would be.
    pub fn take_turn(&mut self, start: &ExecutionStart, held: &HoldState) -> Result<(), u64> {
        let room = key_room(&mut self.keys, start, held);
        let now = match start.rate_clock {
            RateClock::Database => held.database_clock,
            RateClock::At(at) => to_db(at),
        };
        room.rate_tat = rules::RateWindow::per_second(start.rate_limit_per_second).admit(room.rate_tat, now)?;
        room.rate_moved = true;
        Ok(())
    }

    /// Whether the hold may be placed (gate, caps, balance); if so it is counted, and the day
    /// it counts on is returned.
    pub fn admit(&mut self, start: &ExecutionStart, held: &HoldState) -> Result<i64, HoldRefusal> {
        let gate = KeyGate {
            key_revoked: held.key_revoked,
            secret_live: held.secret_live,
            expires_at: held.expires_at,
            allowed_cidrs: &held.allowed_cidrs,
            grant: &held.grant,
            account_approved: held.account_approved,
            read_only: held.read_only,
        };
        gate.admit(start.now, start.client_ip, &start.tool).map_err(HoldRefusal::Denied)?;
        let (day, caps) = self.cap_state(start, held);
        if let Some(refusal) = rules::cap_refusal(&caps, start.hold) {
            return Err(refusal);
        }
        let hold = start.hold.0;
        let (spent_day, held_day) = (caps.spent_day.0, caps.held_day.0);
        let key = key_room(&mut self.keys, start, held);
        key.latest_day = day;
        key.held_total += hold;
        key.held_added += hold;
        key.days.insert(day, (spent_day, held_day + hold));
        *key.held_added_by_day.entry(day).or_default() += hold;
        if let Some(user) = end_user_room(&mut self.end_users, start, held) {
            user.held_total += hold;
            let (spent_day, held_day) = user.days.get(&day).copied().unwrap_or_default();
            user.days.insert(day, (spent_day, held_day + hold));
            *user.held_added_by_day.entry(day).or_default() += hold;
        }
        if !start.sandbox {
            let account = self.account_room(start, held);
            account.available -= hold;
            account.held_added += hold;
        }
        Ok(day)
    }

    fn account_room(&mut self, start: &ExecutionStart, held: &HoldState) -> &mut AccountRoom {
        self.accounts.entry(start.account_id).or_insert(AccountRoom { available: held.available, held_added: 0 })
    }

    /// The hold's day and the caps it is decided against: the key's counters as read plus the
    /// holds admitted before it, the account's available balance (none for a sandbox call).
    fn cap_state(&mut self, start: &ExecutionStart, held: &HoldState) -> (i64, rules::CapState) {
        let available = (!start.sandbox).then(|| Micros(self.account_room(start, held).available));
        let key = key_room(&mut self.keys, start, held);
        let day = rules::hold_day(start.day_number, key.latest_day);
        // The day is the read's or one an earlier hold of this transaction counted on.
        let (spent_day, held_day) = key.days.get(&day).copied().unwrap_or((held.spent_day, held.held_day));
        let (spent_total, held_total) = (key.spent_total, key.held_total);
        let end_user = end_user_room(&mut self.end_users, start, held).map(|user| {
            // A day the read did not read (an earlier hold moved the key's day on) starts empty.
            let (spent_day, held_day) = user.days.get(&day).copied().unwrap_or_default();
            rules::EndUserState {
                spent_day: Micros(spent_day),
                held_day: Micros(held_day),
                spent_total: Micros(user.spent_total),
                held_total: Micros(user.held_total),
                ..held.end_user
            }
        });
        let caps = rules::CapState {
            daily_cap_cents: held.daily_cap_cents,
            total_cap_cents: held.total_cap_cents,
            spent_day: Micros(spent_day),
            held_day: Micros(held_day),
            spent_total: Micros(spent_total),
            held_total: Micros(held_total),
            available,
            end_user,
        };
        (day, caps)
    }

    /// Whether the hold would be refused for want of balance while `balance.depleted` is armed.
    pub fn depletes(&mut self, start: &ExecutionStart, held: &HoldState) -> bool {
        if start.sandbox || held.low_balance_fired.contains(&rules::DEPLETED) {
            return false;
        }
        let (_, caps) = self.cap_state(start, held);
        rules::cap_refusal(&caps, start.hold) == Some(HoldRefusal::Balance)
    }

    /// The cap alerts the hold would set off (`rules::cap_alerts`), with the alerts the read
    /// found already sent (on a day other than the read's, none were).
    pub fn cap_alerts(&mut self, start: &ExecutionStart, held: &HoldState) -> (i64, Vec<rules::CapAlert>) {
        let (day, caps) = self.cap_state(start, held);
        let read_day = rules::hold_day(start.day_number, held.latest_day);
        let day_alerts = if day == read_day { held.day_alerts } else { 0 };
        let sent = rules::SentAlerts { day: day_alerts, total: held.total_alerts };
        (day, rules::cap_alerts(&caps, start.hold, held.cap_alert_percent, sent))
    }
}
