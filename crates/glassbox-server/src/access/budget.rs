//! Period budgets per tenant and per key: tokens and US dollars per UTC day and month.
//!
//! A request reserves its estimated cost before the run; the reservation is released when the
//! request ends, and the actual usage is settled from the usage rows the telemetry pipeline
//! derives from every model call (so settlement and the store agree exactly, whatever the run
//! did: streamed, failed half-way, or cut off by a disconnect). A request is refused while
//! `used + reserved >= limit` for any of its scopes' limits. Reserving and checking happen
//! under one short lock per scope (never held across an await), so when every estimate
//! covers its run's actual usage, the spend of a period ends below `limit + one reservation`,
//! however many requests run at once; in general the overshoot is bounded by the estimates of
//! the requests that were in flight when the limit was crossed.
//!
//! At start the spend of the current day and month is rebuilt from the store's usage rows
//! ([`glassbox_store::KeyStore::usage_by_key`]), so a restart does not reset a budget.

use crate::dashboard::format::civil_from_days;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use glassbox_config::BudgetConfig;
use glassbox_store::{KeyUsage, TimeRange, UsageRow};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The UTC day or month holding `at_ns`, as `[start, end)`.
    pub fn bounds(self, at_ns: i64) -> TimeRange {
        let day = at_ns.div_euclid(NANOS_PER_DAY);
        match self {
            Self::Day => TimeRange { from_ns: day * NANOS_PER_DAY, to_ns: (day + 1) * NANOS_PER_DAY },
            Self::Month => {
                let (year, month, _) = civil_from_days(day);
                let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                TimeRange {
                    from_ns: days_from_civil(year, month, 1) * NANOS_PER_DAY,
                    to_ns: days_from_civil(next_year, next_month, 1) * NANOS_PER_DAY,
                }
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `2025-06-16T00:00:00Z` for a time on a whole second.
pub fn rfc3339(at_ns: i64) -> String {
    let seconds = at_ns.div_euclid(NANOS_PER_SECOND);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// What a budget is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Tokens,
    Usd,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Usd => "usd",
        }
    }
}

/// Whose budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Tenant,
    Key,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Key => "key",
        }
    }
}

/// The limits of one scope in exact units: tokens, and nano-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub daily_tokens: Option<u64>,
    pub daily_nano_usd: Option<i64>,
    pub monthly_tokens: Option<u64>,
    pub monthly_nano_usd: Option<i64>,
}

impl Limits {
    pub fn from_config(config: &BudgetConfig) -> Self {
        let nano = |usd: f64| (usd * 1e9).round() as i64;
        Self {
            daily_tokens: config.daily_tokens,
            daily_nano_usd: config.daily_usd.map(nano),
            monthly_tokens: config.monthly_tokens,
            monthly_nano_usd: config.monthly_usd.map(nano),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }

    fn tokens(&self, period: Period) -> Option<u64> {
        match period {
            Period::Day => self.daily_tokens,
            Period::Month => self.monthly_tokens,
        }
    }

    fn nano_usd(&self, period: Period) -> Option<i64> {
        match period {
            Period::Day => self.daily_nano_usd,
            Period::Month => self.monthly_nano_usd,
        }
    }
}

/// Tokens and cost together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    pub tokens: u64,
    pub nano_usd: i64,
}

impl Amount {
    fn add(&mut self, other: Amount) {
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.nano_usd = self.nano_usd.saturating_add(other.nano_usd);
    }

    fn sub(&mut self, other: Amount) {
        self.tokens = self.tokens.saturating_sub(other.tokens);
        self.nano_usd = self.nano_usd.saturating_sub(other.nano_usd).max(0);
    }
}

/// The settled spend of one period.
#[derive(Debug, Clone, Copy)]
struct PeriodUsage {
    range: TimeRange,
    used: Amount,
}

#[derive(Debug)]
struct ScopeState {
    day: PeriodUsage,
    month: PeriodUsage,
    /// Estimates of the requests in flight; not tied to a period.
    reserved: Amount,
}

impl ScopeState {
    fn new(now_ns: i64) -> Self {
        Self {
            day: PeriodUsage { range: Period::Day.bounds(now_ns), used: Amount::default() },
            month: PeriodUsage { range: Period::Month.bounds(now_ns), used: Amount::default() },
            reserved: Amount::default(),
        }
    }

    /// Starts a new day or month when `now_ns` is past the current one.
    fn roll(&mut self, now_ns: i64) {
        for (period, usage) in [(Period::Day, &mut self.day), (Period::Month, &mut self.month)] {
            if now_ns >= usage.range.to_ns || now_ns < usage.range.from_ns {
                *usage = PeriodUsage { range: period.bounds(now_ns), used: Amount::default() };
            }
        }
    }

    fn period(&self, period: Period) -> &PeriodUsage {
        match period {
            Period::Day => &self.day,
            Period::Month => &self.month,
        }
    }

    /// The first limit that is spent (counting reservations), if any.
    fn first_spent(&self, limits: &Limits) -> Option<(Period, Metric, i128, i128)> {
        for period in [Period::Day, Period::Month] {
            let usage = self.period(period);
            if let Some(limit) = limits.tokens(period) {
                let spent = i128::from(usage.used.tokens) + i128::from(self.reserved.tokens);
                if spent >= i128::from(limit) {
                    return Some((period, Metric::Tokens, i128::from(limit), i128::from(usage.used.tokens)));
                }
            }
            if let Some(limit) = limits.nano_usd(period) {
                let spent = i128::from(usage.used.nano_usd) + i128::from(self.reserved.nano_usd);
                if spent >= i128::from(limit) {
                    return Some((period, Metric::Usd, i128::from(limit), i128::from(usage.used.nano_usd)));
                }
            }
        }
        None
    }
}

/// The budget of one tenant or key.
#[derive(Debug)]
pub struct Scope {
    pub kind: ScopeKind,
    pub id: String,
    pub limits: Limits,
    state: Mutex<ScopeState>,
}

impl Scope {
    pub fn new(kind: ScopeKind, id: String, limits: Limits) -> Self {
        Self { kind, id, limits, state: Mutex::new(ScopeState::new(now_ns())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScopeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds settled usage made at `at_ns`, if it falls in the current day or month.
    fn settle(&self, at_ns: i64, amount: Amount, now_ns: i64) {
        let mut state = self.lock();
        state.roll(now_ns);
        let ScopeState { day, month, .. } = &mut *state;
        for usage in [day, month] {
            if at_ns >= usage.range.from_ns && at_ns < usage.range.to_ns {
                usage.used.add(amount);
            }
        }
    }

    /// Replaces the settled usage of a period (the rebuild at start).
    fn restore(&self, period: Period, range: TimeRange, amount: Amount, now_ns: i64) {
        let mut state = self.lock();
        state.roll(now_ns);
        let usage = match period {
            Period::Day => &mut state.day,
            Period::Month => &mut state.month,
        };
        if usage.range == range {
            usage.used = amount;
        }
    }

    /// What `GET /api/budgets` shows.
    pub fn snapshot(&self, now_ns: i64) -> ScopeSnapshot {
        let mut state = self.lock();
        state.roll(now_ns);
        ScopeSnapshot {
            day: (state.day.range, state.day.used),
            month: (state.month.range, state.month.used),
            reserved: state.reserved,
        }
    }
}

/// A scope's state at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ScopeSnapshot {
    pub day: (TimeRange, Amount),
    pub month: (TimeRange, Amount),
    pub reserved: Amount,
}

/// Why a request was refused: the first spent limit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRefusal {
    pub scope: ScopeKind,
    pub id: String,
    pub period: Period,
    pub metric: Metric,
    /// Tokens, or nano-USD.
    pub limit: i128,
    pub used: i128,
    /// When the period ends, nanoseconds since the epoch.
    pub reset_ns: i64,
    pub now_ns: i64,
}

/// An estimate held against one or two scopes until dropped.
#[derive(Debug)]
pub struct Reservation {
    scopes: Vec<Arc<Scope>>,
    amount: Amount,
}

impl Reservation {
    pub fn amount(&self) -> Amount {
        self.amount
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for scope in &self.scopes {
            scope.lock().reserved.sub(self.amount);
        }
    }
}

/// Reserves `amount` against every scope (in the given order, which callers keep fixed: key
/// before tenant, so two requests never wait for each other's locks in opposite orders), or
/// refuses with the first spent limit.
pub fn reserve(scopes: &[&Arc<Scope>], amount: Amount, now_ns: i64) -> Result<Reservation, BudgetRefusal> {
    let mut guards: Vec<std::sync::MutexGuard<'_, ScopeState>> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let mut state = scope.lock();
        state.roll(now_ns);
        if let Some((period, metric, limit, used)) = state.first_spent(&scope.limits) {
            return Err(BudgetRefusal {
                scope: scope.kind,
                id: scope.id.clone(),
                period,
                metric,
                limit,
                used,
                reset_ns: state.period(period).range.to_ns,
                now_ns,
            });
        }
        guards.push(state);
    }
    for state in &mut guards {
        state.reserved.add(amount);
    }
    drop(guards);
    Ok(Reservation { scopes: scopes.iter().map(|scope| Arc::clone(scope)).collect(), amount })
}

/// Every budget scope, by tenant and by key id; fixed after start, so lookups take no lock.
#[derive(Debug, Default)]
pub struct Budgets {
    pub tenants: foldhash::HashMap<String, Arc<Scope>>,
    pub keys: foldhash::HashMap<String, Arc<Scope>>,
}

impl Budgets {
    /// Settles one model call's usage row against its tenant and key.
    pub fn settle(&self, row: &UsageRow) {
        let amount = Amount { tokens: row.input_tokens.saturating_add(row.output_tokens), nano_usd: row.cost_nano_usd };
        let now = now_ns();
        if !row.api_key_id.is_empty()
            && let Some(scope) = self.keys.get(&row.api_key_id)
        {
            scope.settle(row.timestamp_ns, amount, now);
        }
        if let Some(scope) = self.tenants.get(&row.tenant) {
            scope.settle(row.timestamp_ns, amount, now);
        }
    }

    /// Sets the spend of `period` (the one holding `now_ns`) from the store's sums.
    pub fn restore(&self, period: Period, range: TimeRange, usage: &[KeyUsage], now_ns: i64) {
        let mut tenants: HashMap<&str, Amount> = HashMap::new();
        let mut keys: HashMap<&str, Amount> = HashMap::new();
        for row in usage {
            let amount =
                Amount { tokens: row.input_tokens.saturating_add(row.output_tokens), nano_usd: row.cost_nano_usd };
            tenants.entry(row.tenant.as_str()).or_default().add(amount);
            if !row.api_key_id.is_empty() {
                keys.entry(row.api_key_id.as_str()).or_default().add(amount);
            }
        }
        for (id, scope) in &self.tenants {
            scope.restore(period, range, tenants.get(id.as_str()).copied().unwrap_or_default(), now_ns);
        }
        for (id, scope) in &self.keys {
            scope.restore(period, range, keys.get(id.as_str()).copied().unwrap_or_default(), now_ns);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty() && self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = NANOS_PER_DAY;

    #[test]
    fn dates_round_trip_and_months_have_their_lengths() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2025, 6, 15), 20_254);
        assert_eq!(civil_from_days(20_254), (2025, 6, 15));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in [-800_000, -1, 0, 59, 11_016, 20_254, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let feb_2024 = Period::Month.bounds(days_from_civil(2024, 2, 10) * DAY + 5);
        assert_eq!((feb_2024.to_ns - feb_2024.from_ns) / DAY, 29);
        let dec = Period::Month.bounds(days_from_civil(2025, 12, 31) * DAY + DAY - 1);
        assert_eq!(rfc3339(dec.from_ns), "2025-12-01T00:00:00Z");
        assert_eq!(rfc3339(dec.to_ns), "2026-01-01T00:00:00Z");
        let day = Period::Day.bounds(20_254 * DAY + 3_600 * NANOS_PER_SECOND);
        assert_eq!(
            (rfc3339(day.from_ns), rfc3339(day.to_ns)),
            ("2025-06-15T00:00:00Z".into(), "2025-06-16T00:00:00Z".into())
        );
    }

    fn scope(limits: Limits) -> Arc<Scope> {
        Arc::new(Scope::new(ScopeKind::Tenant, "acme".into(), limits))
    }

    #[test]
    fn reservations_count_until_dropped_and_settled_usage_stays() {
        let now = now_ns();
        let tenant = scope(Limits { daily_tokens: Some(100), ..Limits::default() });
        let first = reserve(&[&tenant], Amount { tokens: 60, nano_usd: 0 }, now).unwrap();
        let second = reserve(&[&tenant], Amount { tokens: 60, nano_usd: 0 }, now).unwrap();
        // 120 reserved >= 100: the next request waits for the in-flight ones.
        let refusal = reserve(&[&tenant], Amount { tokens: 1, nano_usd: 0 }, now).unwrap_err();
        assert_eq!(
            (refusal.period, refusal.metric, refusal.limit, refusal.used),
            (Period::Day, Metric::Tokens, 100, 0)
        );
        assert_eq!(refusal.reset_ns, Period::Day.bounds(now).to_ns);
        drop((first, second));
        tenant.settle(now, Amount { tokens: 99, nano_usd: 0 }, now);
        let third = reserve(&[&tenant], Amount { tokens: 500, nano_usd: 0 }, now).unwrap();
        drop(third);
        tenant.settle(now, Amount { tokens: 1, nano_usd: 0 }, now);
        let refusal = reserve(&[&tenant], Amount { tokens: 1, nano_usd: 0 }, now).unwrap_err();
        assert_eq!(refusal.used, 100);
        // Usage from yesterday does not count today.
        let other = scope(Limits { daily_tokens: Some(10), ..Limits::default() });
        other.settle(now - DAY, Amount { tokens: 1_000, nano_usd: 0 }, now);
        assert!(reserve(&[&other], Amount::default(), now).is_ok());
    }

    #[test]
    fn a_new_day_starts_from_zero_but_the_month_remembers() {
        let today = 20_254 * DAY + 10;
        let tenant = scope(Limits { daily_nano_usd: Some(1_000), monthly_nano_usd: Some(1_500), ..Limits::default() });
        tenant.settle(today, Amount { tokens: 0, nano_usd: 1_000 }, today);
        let refusal = reserve(&[&tenant], Amount::default(), today).unwrap_err();
        assert_eq!((refusal.period, refusal.metric), (Period::Day, Metric::Usd));
        let tomorrow = today + DAY;
        reserve(&[&tenant], Amount::default(), tomorrow).unwrap();
        tenant.settle(tomorrow, Amount { tokens: 0, nano_usd: 500 }, tomorrow);
        let refusal = reserve(&[&tenant], Amount::default(), tomorrow).unwrap_err();
        assert_eq!((refusal.period, refusal.limit, refusal.used), (Period::Month, 1_500, 1_500));
        assert_eq!(rfc3339(refusal.reset_ns), "2025-07-01T00:00:00Z");
    }

    #[test]
    fn restore_sets_tenant_and_key_spend_from_store_sums() {
        let now = now_ns();
        let mut budgets = Budgets::default();
        let limits = Limits { daily_tokens: Some(1_000), ..Limits::default() };
        budgets.tenants.insert("acme".into(), Arc::new(Scope::new(ScopeKind::Tenant, "acme".into(), limits)));
        budgets.keys.insert("k1".into(), Arc::new(Scope::new(ScopeKind::Key, "k1".into(), limits)));
        let row = |key: &str, input| KeyUsage {
            tenant: "acme".into(),
            api_key_id: key.into(),
            calls: 1,
            input_tokens: input,
            output_tokens: 0,
            cost_nano_usd: 0,
        };
        budgets.restore(Period::Day, Period::Day.bounds(now), &[row("k1", 300), row("k2", 700)], now);
        let refusal = reserve(&[&budgets.keys["k1"], &budgets.tenants["acme"]], Amount::default(), now).unwrap_err();
        assert_eq!((refusal.scope, refusal.used), (ScopeKind::Tenant, 1_000));
        assert_eq!(budgets.keys["k1"].snapshot(now).day.1.tokens, 300);
    }
}
