//! The money path's rules, written once for every backend and for the server: whether a key
//! may start a paid call (the checks authentication makes, made again inside the hold's
//! transaction so that a change landing in between wins), the UTC day a hold counts on
//! (never earlier than a day the key already counted on), whether a hold fits under the caps
//! and the balance, and how a provider's reported cost becomes a charge.
//!
//! A backend reads the state these functions need in its transaction, asks them, and writes
//! what they decide; it decides nothing itself.

use std::net::IpAddr;
use time::OffsetDateTime as Timestamp;
use visa_core::money::{MICROS_PER_CENT, Micros};
use visa_core::policy::{CidrAllowlist, ToolGrant};

/// Why a key may not start a call, in the order the checks are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The key is revoked, or the secret presented is revoked or past its rotation grace.
    KeyRevoked,
    KeyExpired,
    SourceIpDenied,
    ToolNotPermitted,
    AccountNotApproved,
    ReadOnly,
}

/// What decides whether a key may start a call, read at one instant.
#[derive(Debug, Clone, Copy)]
pub struct KeyGate<'a> {
    pub key_revoked: bool,
    /// The presented secret is neither revoked nor past its rotation grace.
    pub secret_live: bool,
    pub expires_at: Option<Timestamp>,
    pub allowed_cidrs: &'a CidrAllowlist,
    pub grant: &'a ToolGrant,
    pub account_approved: bool,
    pub read_only: bool,
}

impl KeyGate<'_> {
    /// The checks that come before the tool is looked up: the secret, the expiry, the source IP.
    pub fn check_identity(&self, now: Timestamp, client_ip: IpAddr) -> Result<(), Denial> {
        if self.key_revoked || !self.secret_live {
            Err(Denial::KeyRevoked)
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Err(Denial::KeyExpired)
        } else if !self.allowed_cidrs.allows(client_ip) {
            Err(Denial::SourceIpDenied)
        } else {
            Ok(())
        }
    }

    /// The checks on a known tool (by canonical id): the grant, the account, read-only.
    pub fn check_tool(&self, canonical_tool: &str) -> Result<(), Denial> {
        if !self.grant.permits(canonical_tool) {
            Err(Denial::ToolNotPermitted)
        } else if !self.account_approved {
            Err(Denial::AccountNotApproved)
        } else if self.read_only {
            Err(Denial::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Every check, as the hold makes them.
    pub fn admit(&self, now: Timestamp, client_ip: IpAddr, canonical_tool: &str) -> Result<(), Denial> {
        self.check_identity(now, client_ip)?;
        self.check_tool(canonical_tool)
    }
}

/// Days since 1970-01-01 in UTC.
pub fn utc_day_number(at: Timestamp) -> i64 {
    at.unix_timestamp().div_euclid(86_400)
}

/// The UTC day a hold counts on: the caller's day, or the newest day the key already counted
/// on if that is later (a clock stepped back, or two holds around midnight reaching the store
/// out of order). So a key's day never moves backwards and an earlier day's counters are
/// never reopened.
pub fn hold_day(requested_day: i64, latest_day: i64) -> i64 {
    requested_day.max(latest_day)
}

/// A key's request rate as GCRA (the generic cell rate algorithm) keeps it: one request every
/// `interval` microseconds, and a burst of `per_second` requests (a request is admitted while
/// the theoretical arrival time is at most `tolerance` ahead of now). The state is one number
/// per key, so every node updates it in the statement that locks the key's row for a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub interval_micros: i64,
    pub tolerance_micros: i64,
}

impl RateWindow {
    pub fn per_second(per_second: u32) -> Self {
        let per_second = i64::from(per_second.max(1));
        let interval_micros = 1_000_000 / per_second;
        Self { interval_micros, tolerance_micros: interval_micros * (per_second - 1) }
    }

    /// Whether a request at `now` (unix micros) is admitted by a key whose theoretical arrival
    /// time is `tat`: the new `tat`, or the whole seconds to wait (at least 1).
    pub fn admit(&self, tat: i64, now: i64) -> Result<i64, u64> {
        let earliest = tat.max(now);
        let ahead = earliest - now - self.tolerance_micros;
        if ahead <= 0 { Ok(earliest + self.interval_micros) } else { Err((ahead as u64).div_ceil(1_000_000).max(1)) }
    }
}

/// The counters a hold is checked against, as the hold's transaction read them.
#[derive(Debug, Clone, Copy)]
pub struct CapState {
    pub daily_cap_cents: i64,
    pub total_cap_cents: Option<i64>,
    /// Captured and held on the hold's day.
    pub spent_day: Micros,
    pub held_day: Micros,
    pub spent_total: Micros,
    pub held_total: Micros,
    /// The account's balance less its holds; `None` when no account money moves (preview).
    pub available: Option<Micros>,
    /// The call's end user's counters under the key's end-user caps; `None` when the call
    /// names no end user.
    pub end_user: Option<EndUserState>,
}

/// One end user's counters of one key, and the key's caps on each end user (cents, `None`:
/// no such cap), as the hold's transaction read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndUserState {
    pub daily_cap_cents: Option<i64>,
    pub total_cap_cents: Option<i64>,
    /// Captured and held on the hold's day.
    pub spent_day: Micros,
    pub held_day: Micros,
    pub spent_total: Micros,
    pub held_total: Micros,
}

/// Why a hold was refused. Nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefusal {
    /// The key's request rate is spent: a request is admitted again in this many seconds.
    RateLimited {
        retry_after: u64,
    },
    DailyCap,
    TotalCap,
    /// The key's cap on each end user, per UTC day, is reached by this end user.
    EndUserDailyCap,
    /// The key's cap on each end user, in total, is reached by this end user.
    EndUserTotalCap,
    Balance,
    /// The key, its secret or its account changed after the request was authenticated.
    Denied(Denial),
}

/// The caps a hold is checked against, in the order they are checked, each as (what is used,
/// the cap in cents, the refusal it gives): the key's daily and total caps, then its caps on
/// the call's end user. The balance comes after them all.
fn caps(state: &CapState) -> impl Iterator<Item = (i64, i64, HoldRefusal)> {
    let used = |spent: Micros, held: Micros| spent.0.saturating_add(held.0);
    let key = [
        Some((used(state.spent_day, state.held_day), state.daily_cap_cents, HoldRefusal::DailyCap)),
        state.total_cap_cents.map(|cap| (used(state.spent_total, state.held_total), cap, HoldRefusal::TotalCap)),
    ];
    let end_user = state.end_user.map_or([None, None], |u| {
        [
            u.daily_cap_cents.map(|cap| (used(u.spent_day, u.held_day), cap, HoldRefusal::EndUserDailyCap)),
            u.total_cap_cents.map(|cap| (used(u.spent_total, u.held_total), cap, HoldRefusal::EndUserTotalCap)),
        ]
    });
    key.into_iter().chain(end_user).flatten()
}

/// A limit that refuses calls, as the API names it (`limit` on a refusal, docs/errors.md) and
/// as spend analytics count refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    KeyDailyCap,
    KeyTotalCap,
    EndUserDailyCap,
    EndUserTotalCap,
    AccountBalance,
    KeyRate,
}

impl Limit {
    pub const ALL: [Limit; 6] = [
        Limit::KeyDailyCap,
        Limit::KeyTotalCap,
        Limit::EndUserDailyCap,
        Limit::EndUserTotalCap,
        Limit::AccountBalance,
        Limit::KeyRate,
    ];

    /// Every limit's name (`as_str`), in `ALL`'s order.
    pub const ALL_NAMES: [&'static str; 6] = {
        let mut names = [""; 6];
        let mut i = 0;
        while i < 6 {
            names[i] = Self::ALL[i].as_str();
            i += 1;
        }
        names
    };

    /// The limit a hold's refusal is about (none for a key the hold found changed).
    pub fn of(refusal: &HoldRefusal) -> Option<Limit> {
        match refusal {
            HoldRefusal::DailyCap => Some(Limit::KeyDailyCap),
            HoldRefusal::TotalCap => Some(Limit::KeyTotalCap),
            HoldRefusal::EndUserDailyCap => Some(Limit::EndUserDailyCap),
            HoldRefusal::EndUserTotalCap => Some(Limit::EndUserTotalCap),
            HoldRefusal::Balance => Some(Limit::AccountBalance),
            HoldRefusal::RateLimited { .. } => Some(Limit::KeyRate),
            HoldRefusal::Denied(_) => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::KeyDailyCap => "key_daily_cap",
            Limit::KeyTotalCap => "key_total_cap",
            Limit::EndUserDailyCap => "end_user_daily_cap",
            Limit::EndUserTotalCap => "end_user_total_cap",
            Limit::AccountBalance => "account_balance",
            Limit::KeyRate => "key_rate",
        }
    }

    pub fn parse(text: &str) -> Option<Limit> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

/// Why a hold of `hold` does not fit, if it does not: the key's daily cap, its total cap, its
/// caps on the end user (daily, then total), then the balance.
pub fn cap_refusal(state: &CapState, hold: Micros) -> Option<HoldRefusal> {
    let over = |used: i64, cap_cents: i64| used.saturating_add(hold.0) > cap_cents.saturating_mul(MICROS_PER_CENT);
    caps(state)
        .find(|(used, cap, _)| over(*used, *cap))
        .map(|(_, _, refusal)| refusal)
        .or_else(|| state.available.is_some_and(|available| available < hold).then_some(HoldRefusal::Balance))
}

/// What a key may still hold now, and the limit that bounds it: the least of its caps' room
/// (the end user's too, when the call names one) and the account's available balance (no
/// balance in preview), never below zero. A hold fits exactly when it is at most this
/// (`cap_refusal`); the bound is named as the refusal it would give, ties going to the limit
/// `cap_refusal` checks first.
pub fn spendable(state: &CapState) -> (Micros, HoldRefusal) {
    let room = |used: i64, cap_cents: i64| cap_cents.saturating_mul(MICROS_PER_CENT).saturating_sub(used).max(0);
    let mut bound = (i64::MAX, HoldRefusal::DailyCap);
    for (used, cap, refusal) in caps(state) {
        if room(used, cap) < bound.0 {
            bound = (room(used, cap), refusal);
        }
    }
    if let Some(available) = state.available
        && available.0.max(0) < bound.0
    {
        bound = (available.0.max(0), HoldRefusal::Balance);
    }
    (Micros(bound.0), bound.1)
}

/// Which cap an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Daily,
    Total,
}

/// A cap alert (docs/webhooks.md): the key's spend (captured and held) passed its alert
/// percentage of a cap, or a call was refused by it. Each is sent once per key and
/// cap (and UTC day, for the daily cap): `ALERT_THRESHOLD` and `ALERT_REACHED` are the bits
/// that record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapAlert {
    Threshold(Cap),
    Reached(Cap),
}

pub const ALERT_THRESHOLD: i64 = 1;
pub const ALERT_REACHED: i64 = 2;

impl CapAlert {
    pub fn cap(self) -> Cap {
        match self {
            CapAlert::Threshold(cap) | CapAlert::Reached(cap) => cap,
        }
    }

    /// Whether this is the alert of a hold refused with `refusal`.
    pub fn refused(&self, refusal: &HoldRefusal) -> bool {
        matches!(
            (self, refusal),
            (CapAlert::Reached(Cap::Daily), HoldRefusal::DailyCap)
                | (CapAlert::Reached(Cap::Total), HoldRefusal::TotalCap)
        )
    }

    pub fn bit(self) -> i64 {
        match self {
            CapAlert::Threshold(_) => ALERT_THRESHOLD,
            CapAlert::Reached(_) => ALERT_REACHED,
        }
    }
}

/// The cap alerts already sent (`CapAlert` bits): for the daily cap on the hold's day, and
/// for the total cap.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentAlerts {
    pub day: i64,
    pub total: i64,
}

/// The cap alerts a hold of `hold` sets off, given those already `sent`: `Reached` if the hold
/// is refused by that cap, else `Threshold` for each cap whose `percent` it passes.
pub fn cap_alerts(state: &CapState, hold: Micros, percent: i64, sent: SentAlerts) -> Vec<CapAlert> {
    let unsent = |alert: CapAlert| {
        let sent = match alert.cap() {
            Cap::Daily => sent.day,
            Cap::Total => sent.total,
        };
        sent & alert.bit() == 0
    };
    let candidates = match cap_refusal(state, hold) {
        Some(HoldRefusal::DailyCap) => vec![CapAlert::Reached(Cap::Daily)],
        Some(HoldRefusal::TotalCap) => vec![CapAlert::Reached(Cap::Total)],
        Some(_) => vec![],
        None => {
            let passes = |used: i64, cap_cents: i64| {
                let at = cap_cents.saturating_mul(MICROS_PER_CENT).saturating_mul(percent) / 100;
                used < at && used.saturating_add(hold.0) >= at
            };
            let mut passed = vec![];
            if passes(state.spent_day.0 + state.held_day.0, state.daily_cap_cents) {
                passed.push(CapAlert::Threshold(Cap::Daily));
            }
            if state.total_cap_cents.is_some_and(|cap| passes(state.spent_total.0 + state.held_total.0, cap)) {
                passed.push(CapAlert::Threshold(Cap::Total));
            }
            passed
        }
    };
    candidates.into_iter().filter(|a| unsent(*a)).collect()
}

/// How a provider's reported cost settles a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// Captured from the hold: the reported cost, never above the hold, never negative.
    pub charged: Micros,
    /// What the provider reported beyond the hold: the platform's loss, recorded as its own
    /// ledger entry and never charged to anyone.
    pub overage: Micros,
}

/// The charge clamp: the one place a reported cost becomes a charge.
pub fn settle(hold: Micros, reported: Micros) -> Settlement {
    let reported = Micros(reported.0.max(0));
    let charged = Micros(reported.0.min(hold.0.max(0)));
    Settlement { charged, overage: Micros(reported.0 - charged.0) }
}

impl Settlement {
    /// What the account pays for a captured call: nothing in the sandbox (preview keys), else
    /// the clamped charge. (The key's spend counters count the clamped charge either way.)
    pub fn to_account(&self, sandbox: bool) -> Micros {
        if sandbox { Micros::ZERO } else { self.charged }
    }
}

/// Low-balance alerts (docs/webhooks.md): the thresholds (cents) that a drop of the available
/// balance from `before` to `after` crosses downward and that have not fired since the balance
/// was last lifted above them. Each fires `balance.low` once.
pub fn low_balance_crossed(thresholds: &[i64], fired: &[i64], before: Micros, after: Micros) -> Vec<i64> {
    thresholds
        .iter()
        .copied()
        .filter(|t| !fired.contains(t))
        .filter(|t| Micros::from_cents(*t).is_some_and(|at| before >= at && after < at))
        .collect()
}

/// In an account's fired list, `balance.depleted`: a call was refused for want of balance (a
/// threshold is at least 1 cent, so 0 is free). Any credit re-arms it.
pub const DEPLETED: i64 = 0;

/// The thresholds still fired when the available balance is `available`: one it has reached
/// again (a credit) is re-armed.
pub fn low_balance_fired_after(fired: &[i64], available: Micros) -> Vec<i64> {
    fired.iter().copied().filter(|t| Micros::from_cents(*t).is_some_and(|at| available < at)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cap_alert_is_set_off_by_passing_its_percent_or_by_a_refusal_and_only_once() {
        use super::{Cap, CapAlert, CapState, SentAlerts, cap_alerts};
        let cents = |c: i64| Micros(c * 10_000);
        let state = |day_used: i64, total_used: i64| CapState {
            daily_cap_cents: 100,
            total_cap_cents: Some(1_000),
            spent_day: cents(day_used),
            held_day: Micros::ZERO,
            spent_total: cents(total_used),
            held_total: Micros::ZERO,
            available: Some(cents(1_000_000)),
            end_user: None,
        };
        let none = SentAlerts::default();
        let sent = |day: i64| SentAlerts { day, total: 0 };
        assert_eq!(cap_alerts(&state(79, 79), cents(1), 80, none), [CapAlert::Threshold(Cap::Daily)]);
        assert!(cap_alerts(&state(78, 78), cents(1), 80, none).is_empty(), "79 % is not 80 %");
        assert!(cap_alerts(&state(80, 80), cents(1), 80, none).is_empty(), "already past it");
        assert!(cap_alerts(&state(79, 79), cents(1), 80, sent(1)).is_empty(), "already sent today");
        assert_eq!(cap_alerts(&state(100, 100), cents(1), 80, sent(1)), [CapAlert::Reached(Cap::Daily)]);
        assert!(cap_alerts(&state(100, 100), cents(1), 80, sent(3)).is_empty());
        assert_eq!(
            cap_alerts(&state(0, 799), cents(1), 80, none),
            [CapAlert::Threshold(Cap::Total)],
            "the total cap's own 80 %"
        );
        assert_eq!(cap_alerts(&state(0, 1_000), cents(1), 80, none), [CapAlert::Reached(Cap::Total)]);
        // The key's own percentage: 50 % of the day is 50 cents; 100 % is the last cent under the cap.
        assert_eq!(cap_alerts(&state(49, 49), cents(1), 50, none), [CapAlert::Threshold(Cap::Daily)]);
        assert!(cap_alerts(&state(79, 79), cents(1), 50, none).is_empty());
        assert_eq!(cap_alerts(&state(99, 99), cents(1), 100, none), [CapAlert::Threshold(Cap::Daily)]);
    }

    #[test]
    fn what_a_key_may_spend_is_the_least_room_and_exactly_what_a_hold_may_take() {
        use super::{CapState, HoldRefusal, cap_refusal, spendable};
        let cents = |c: i64| Micros(c * 10_000);
        let state = |day: i64, total: Option<i64>, available: Option<i64>| CapState {
            daily_cap_cents: 100,
            total_cap_cents: total,
            spent_day: cents(day),
            held_day: Micros(1),
            spent_total: cents(50),
            held_total: Micros(1),
            available: available.map(cents),
            end_user: None,
        };
        assert_eq!(spendable(&state(30, None, None)), (Micros(cents(70).0 - 1), HoldRefusal::DailyCap));
        assert_eq!(spendable(&state(30, Some(60), None)), (Micros(cents(10).0 - 1), HoldRefusal::TotalCap));
        assert_eq!(spendable(&state(30, Some(60), Some(5))), (cents(5), HoldRefusal::Balance));
        assert_eq!(spendable(&state(100, None, Some(5))), (Micros::ZERO, HoldRefusal::DailyCap), "over: zero");
        // Exactly the largest hold that fits, whichever limit bounds it.
        for s in [
            state(30, None, None),
            state(30, Some(60), None),
            state(30, Some(60), Some(5)),
            state(99, Some(51), Some(3)),
        ] {
            let (room, bound) = spendable(&s);
            assert_eq!(cap_refusal(&s, room), None, "{s:?}");
            assert_eq!(cap_refusal(&s, Micros(room.0 + 1)), Some(bound), "{s:?}");
        }
    }

    #[test]
    fn a_low_balance_threshold_fires_once_per_downward_crossing_and_rearms_at_or_above_it() {
        use super::{low_balance_crossed, low_balance_fired_after};
        let m = |cents: i64| Micros(cents * 10_000);
        assert_eq!(low_balance_crossed(&[1000, 500], &[], m(1200), m(400)), [1000, 500]);
        assert_eq!(low_balance_crossed(&[1000, 500], &[1000], m(1200), m(400)), [500]);
        assert_eq!(low_balance_crossed(&[1000], &[], m(1000), m(999)), [1000], "from exactly the threshold");
        assert!(low_balance_crossed(&[1000], &[], m(999), m(10)).is_empty(), "already under it");
        assert!(low_balance_crossed(&[1000], &[], m(2000), m(1000)).is_empty(), "not under it");
        assert_eq!(low_balance_fired_after(&[1000, 500], m(700)), [1000]);
        assert!(low_balance_fired_after(&[super::DEPLETED], m(0)).is_empty(), "any credit re-arms depletion");
        assert!(low_balance_fired_after(&[1000, 500], m(1000)).is_empty());
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_rate_window_admits_a_burst_then_one_per_interval() {
        let window = RateWindow::per_second(4);
        let (mut tat, now) = (0, 10_000_000);
        for _ in 0..4 {
            tat = window.admit(tat, now).expect("the burst is admitted");
        }
        assert_eq!(window.admit(tat, now), Err(1), "the fifth at once waits");
        assert_eq!(window.admit(tat, now + 249_999), Err(1));
        assert!(window.admit(tat, now + 250_000).is_ok(), "one more each quarter second");
        let slow = RateWindow::per_second(1);
        let tat = slow.admit(0, now).unwrap();
        assert_eq!(slow.admit(tat, now + 1), Err(1));
        assert_eq!(slow.admit(tat, now + 1_000_000), Ok(now + 2_000_000));
    }

    proptest! {
        /// Over any window of arrivals, no more than the burst plus the rate times its length
        /// are admitted.
        #[test]
        fn the_rate_window_never_admits_more_than_its_rate(
            per_second in 1u32..50,
            gaps in proptest::collection::vec(0i64..200_000, 1..400),
        ) {
            let window = RateWindow::per_second(per_second);
            let (mut tat, mut now, mut admitted) = (0i64, 1_000_000_000i64, 0i64);
            let start = now;
            for gap in gaps {
                now += gap;
                if let Ok(next) = window.admit(tat, now) {
                    tat = next;
                    admitted += 1;
                }
            }
            let elapsed = now - start;
            let allowed = i64::from(per_second) + elapsed / window.interval_micros;
            prop_assert!(admitted <= allowed, "{admitted} admitted, at most {allowed}");
        }
    }

    fn state(daily: i64, total: Option<i64>, used_day: i64, used_total: i64, available: Option<i64>) -> CapState {
        CapState {
            daily_cap_cents: daily,
            total_cap_cents: total,
            spent_day: Micros(used_day),
            held_day: Micros(0),
            spent_total: Micros(used_total),
            held_total: Micros(0),
            available: available.map(Micros),
            end_user: None,
        }
    }

    #[test]
    fn refusals_come_in_order_daily_total_balance() {
        let hold = Micros(10_000);
        assert_eq!(cap_refusal(&state(1, Some(1), 1, 1, Some(0)), hold), Some(HoldRefusal::DailyCap));
        assert_eq!(cap_refusal(&state(2, Some(1), 1, 1, Some(0)), hold), Some(HoldRefusal::TotalCap));
        assert_eq!(cap_refusal(&state(2, None, 0, 0, Some(9_999)), hold), Some(HoldRefusal::Balance));
        assert_eq!(cap_refusal(&state(1, Some(1), 0, 0, None), hold), None, "exactly the cap fits");
    }

    #[test]
    fn a_day_never_goes_backwards() {
        assert_eq!(hold_day(20_000, 20_001), 20_001);
        assert_eq!(hold_day(20_002, 20_001), 20_002);
    }

    proptest! {
        #[test]
        fn a_settlement_splits_the_report_exactly(hold in 0i64..1_000_000_000, reported in -10i64..2_000_000_000) {
            let s = settle(Micros(hold), Micros(reported));
            prop_assert!(s.charged.0 >= 0 && s.charged.0 <= hold);
            prop_assert!(s.overage.0 >= 0);
            prop_assert_eq!(s.charged.0 + s.overage.0, reported.max(0));
        }

        #[test]
        fn a_hold_fits_exactly_when_every_limit_holds(
            daily in 1i64..1000, total in proptest::option::of(1i64..1000), used_day in 0i64..10_000_000,
            used_total in 0i64..10_000_000, available in proptest::option::of(0i64..10_000_000), hold in 0i64..10_000_000,
            user in proptest::option::of((
                proptest::option::of(0i64..1000), proptest::option::of(0i64..1000), 0i64..10_000_000, 0i64..10_000_000,
            )),
        ) {
            let mut s = state(daily, total, used_day, used_total.max(used_day), available);
            s.end_user = user.map(|(daily, total, day, all)| EndUserState {
                daily_cap_cents: daily,
                total_cap_cents: total,
                spent_day: Micros(day / 2),
                held_day: Micros(day - day / 2),
                spent_total: Micros(all.max(day)),
                held_total: Micros::ZERO,
            });
            let under = |used: i64, cap: Option<i64>| cap.is_none_or(|c| used + hold <= c * MICROS_PER_CENT);
            let fits = used_day + hold <= daily * MICROS_PER_CENT
                && under(used_total.max(used_day), total)
                && user.is_none_or(|(daily, total, day, all)| under(day, daily) && under(all.max(day), total))
                && available.is_none_or(|a| a >= hold);
            prop_assert_eq!(cap_refusal(&s, Micros(hold)).is_none(), fits);
            // What `spendable` says fits is exactly the largest hold that does (when one does:
            // past a cap already, none does, and it says zero).
            let (room, bound) = spendable(&s);
            if cap_refusal(&s, Micros::ZERO).is_none() {
                prop_assert_eq!(cap_refusal(&s, room), None);
            }
            prop_assert_eq!(cap_refusal(&s, Micros(room.0 + 1)), Some(bound));
        }
    }
}
