//! The shared rate governor: one schedule of requests per destination key (VAN's API key,
//! a partner's endpoint), shared by every worker in every Lambda instance.
//!
//! The schedule is one item in the store ([`RateStore`]): the next free slot. A worker
//! takes a block of slots `1 / rate` apart with one conditional write (a generic cell
//! rate algorithm handing out blocks: no clock ticks, no refill writes, and an idle key
//! costs nothing), then sends on those slots. A worker whose next slot is further away than
//! [`HORIZON`] takes none and says how long to wait ([`Admission::Busy`]): its messages go
//! back to the queue with that delay rather than hold a Lambda idle. A worker that gets
//! slots keeps sending at the key's rate until its batch's deadline; one that cannot get
//! one soon hands its messages back. When the destination
//! answers 429 the key runs slower — the schedule moves past the destination's hint and
//! the gap between slots doubles — and the slowdown halves every [`HALF_LIFE`], probing back
//! up to the configured rate. What a worker took and did not use it gives back when no one
//! has taken slots after it.
//!
//! Times are the wall clock's (milliseconds since the epoch), the one clock every process
//! shares; the run's own clock may stand still in tests.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{RateState, RateStore, StoreError};

/// The longest a worker waits for its next slot; past it the messages go back to the queue.
pub const HORIZON: Duration = Duration::from_secs(2);
/// How long the slowdown after a 429 takes to halve.
pub const HALF_LIFE: Duration = Duration::from_secs(10);
/// A worker takes at most this much of the schedule at once.
pub const BLOCK_SPAN: Duration = Duration::from_millis(500);
/// The least lateness a slot may have and still be used.
pub const LATE: Duration = Duration::from_millis(25);
/// 429s within this long of the last one that slowed the key are the same overload.
pub const REHIT: Duration = Duration::from_millis(250);
/// The slowest a run of 429s makes a key, against its configured rate.
const SLOWEST: f64 = 64.0;
/// Attempts at one conditional write before giving the message back.
const CONTENDED: u32 = 8;

/// What the governor answers a request for a slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Send after waiting this long (the slot, in wall-clock milliseconds, for tests).
    At { wait: Duration, slot_ms: i64 },
    /// No slot within [`HORIZON`]: come back after this long.
    Busy(Duration),
}

/// When a request leaves ([`Governor::keep`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Turn {
    At(tokio::time::Instant),
    /// No slot within [`HORIZON`]: come back after this long.
    Busy(Duration),
}

/// The rate a key runs at: the gap between two slots, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    gap_ms: f64,
}

impl Rate {
    /// `per_second` requests a second; `None` for no limit (or a number no limit can be
    /// made of: a stored document may predate the rate's range check).
    pub fn per_second(per_second: f64) -> Option<Self> {
        (per_second.is_finite() && per_second > 0.0).then(|| Self {
            // A day between two requests is far past any batch; never a gap no clock holds.
            gap_ms: (1000.0 / per_second).min(86_400_000.0),
        })
    }

    /// Slots in one [`BLOCK_SPAN`], at least one.
    fn block(self) -> u32 {
        ((BLOCK_SPAN.as_secs_f64() * 1000.0 / self.gap_ms).floor() as u32).max(1)
    }
}

/// The slowdown `state` still carries at `now_ms`.
pub fn slow_at(state: &RateState, now_ms: i64) -> f64 {
    let since = (now_ms - state.hit_at_ms).max(0) as f64;
    let halvings = since / (HALF_LIFE.as_secs_f64() * 1000.0);
    (1.0 + (state.slow - 1.0).max(0.0) * 0.5f64.powf(halvings)).min(SLOWEST)
}

/// The schedule after taking up to `n` slots at `now_ms` — no slot later than `latest_ms`:
/// a slot held past what a worker waits for would be handed back with its message and,
/// once another worker has taken slots after it, lost — with the first slot, the gap
/// between them and how many were taken; or, when the first would be later than
/// `latest_ms`, how long to wait before asking again: until it is half a horizon away, and
/// at least a second.
pub fn take(
    state: Option<&RateState>,
    rate: Rate,
    n: u32,
    now_ms: i64,
    latest_ms: i64,
) -> Result<(RateState, i64, f64, u32), Duration> {
    // The slowdown is kept as it was at the 429 (it wears off from then); the gap uses
    // what is left of it now.
    let (next, slow, now_slow, hit_at, version) = match state {
        Some(s) => (
            s.next_ms,
            s.slow,
            slow_at(s, now_ms),
            s.hit_at_ms,
            s.version,
        ),
        None => (now_ms, 1.0, 1.0, 0, 0),
    };
    let first = next.max(now_ms);
    if first > latest_ms {
        return Err(come_back(first, now_ms));
    }
    let gap = rate.gap_ms * now_slow;
    let fits = ((latest_ms - first) as f64 / gap).floor() as u32 + 1;
    let n = n.min(fits).max(1);
    let state = RateState {
        next_ms: first + (gap * f64::from(n)).ceil() as i64,
        slow,
        hit_at_ms: hit_at,
        version: version + 1,
    };
    Ok((state, first, gap, n))
}

/// How long to wait before asking again for a slot at `first_ms`.
fn come_back(first_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis((first_ms - now_ms).max(0) as u64)
        .saturating_sub(HORIZON / 2)
        .max(Duration::from_secs(1))
}

/// The schedule after the destination answered 429 at `now_ms` with `hint` (VAN's "Try
/// again in N ms"): nothing before the hint has passed, and twice as slow — at most once
/// per [`REHIT`] however many workers were told, so one crowd of 429s halves the rate once.
/// `None` when the schedule already says so (another worker recorded this 429's like).
pub fn hit(state: Option<&RateState>, now_ms: i64, hint: Option<Duration>) -> Option<RateState> {
    let hint = hint.unwrap_or(Duration::from_secs(1)).min(HORIZON);
    let until = now_ms + hint.as_millis() as i64;
    match state {
        Some(s) if now_ms - s.hit_at_ms < REHIT.as_millis() as i64 => (s.next_ms < until)
            .then_some(RateState {
                next_ms: until,
                version: s.version + 1,
                ..*s
            }),
        Some(s) => Some(RateState {
            next_ms: s.next_ms.max(until),
            slow: (slow_at(s, now_ms) * 2.0).min(SLOWEST),
            hit_at_ms: now_ms,
            version: s.version + 1,
        }),
        None => Some(RateState {
            next_ms: until,
            slow: 2.0,
            hit_at_ms: now_ms,
            version: 1,
        }),
    }
}

/// Slots this worker took and has not used.
#[derive(Debug, Default)]
struct Held {
    /// The next of them, in wall-clock milliseconds.
    next_ms: f64,
    gap_ms: f64,
    left: u32,
    /// The schedule as this worker left it: if it still reads so, no one took slots after
    /// these, and they can be given back.
    after: Option<RateState>,
}

/// One worker's view of one destination key's schedule.
pub struct Governor {
    store: Arc<dyn RateStore>,
    key: String,
    rate: Rate,
    /// The most slots taken at once: half a second's.
    block: u32,
    /// Requests the batch is still expected to make (one per message not yet admitted): a
    /// block is never larger, so a batch's last block is not mostly given back — or, when
    /// another worker took slots after it, wasted.
    expected: std::sync::atomic::AtomicU32,
    held: tokio::sync::Mutex<Held>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("key", &self.key)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch on the wall clock.
fn wall_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Governor {
    /// A governor of `key` at `rate` for a batch of `messages` (a request each, at least:
    /// slots for more are taken as they are asked for).
    pub fn new(store: Arc<dyn RateStore>, key: String, rate: Rate, messages: usize) -> Self {
        Self {
            store,
            key,
            rate,
            block: rate.block(),
            expected: std::sync::atomic::AtomicU32::new(
                u32::try_from(messages).unwrap_or(u32::MAX),
            ),
            held: tokio::sync::Mutex::new(Held::default()),
        }
    }

    /// How late a slot may still be used: half the key's gap, and never less than
    /// [`LATE`] (a store's answer and a timer's tick take about that).
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs_f64(self.rate.gap_ms / 2000.0).max(LATE)
    }

    /// How many sends of a batch to keep waiting for slots at once: one for every 20 a
    /// second the key allows, at most a batch (ten).
    pub fn in_flight(&self) -> usize {
        ((1000.0 / self.rate.gap_ms / 20.0).ceil() as usize).min(10)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// When a request given `slot` (taken earlier, before a store write, say) leaves:
    /// at it while it is missed by no more than the [`Governor::tolerance`], otherwise at a
    /// fresh one — a slot is never used late — or `Busy` when none is in reach.
    pub async fn keep(&self, slot: Option<tokio::time::Instant>) -> Result<Turn, StoreError> {
        let now = tokio::time::Instant::now();
        if let Some(slot) = slot.filter(|slot| *slot + self.tolerance() >= now) {
            return Ok(Turn::At(slot));
        }
        Ok(match self.admit().await? {
            Admission::At { wait, .. } => Turn::At(now + wait),
            Admission::Busy(next) => Turn::Busy(next),
        })
    }

    /// A slot for one request. A slot this worker holds that has passed by more than the
    /// [`Governor::tolerance`] is dropped, never used late: a late send crowds the next
    /// slot, maybe another worker's. The first slot of a block just taken is always used
    /// (it is as late as the store's answer, and dropping it would only take another).
    pub async fn admit(&self) -> Result<Admission, StoreError> {
        let late = self.tolerance().as_secs_f64() * 1000.0;
        let mut held = self.held.lock().await;
        loop {
            let mut fresh = false;
            if held.left == 0 {
                match self.take_block().await? {
                    Ok(block) => *held = block,
                    Err(wait) => return Ok(Admission::Busy(wait)),
                }
                fresh = true;
            }
            let slot = held.next_ms;
            let now = wall_ms();
            if slot > (now + HORIZON.as_millis() as i64) as f64 {
                // Held, and further away than a worker waits: left for the give-back.
                return Ok(Admission::Busy(come_back(slot as i64, now)));
            }
            held.next_ms += held.gap_ms;
            held.left -= 1;
            if !fresh && slot + late < now as f64 {
                continue;
            }
            let _ = self.expected.fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| n.checked_sub(1),
            );
            let slot_ms = slot.ceil() as i64;
            let wait = Duration::from_millis((slot_ms - now).max(0) as u64);
            return Ok(Admission::At { wait, slot_ms });
        }
    }

    /// A block of slots from the shared schedule, or how long until one is in reach.
    async fn take_block(&self) -> Result<Result<Held, Duration>, StoreError> {
        let expected = self.expected.load(std::sync::atomic::Ordering::Relaxed);
        let n = self.block.min(expected).max(1);
        for _ in 0..CONTENDED {
            let read = self.store.rate(&self.key).await?;
            let now = wall_ms();
            let latest = now + HORIZON.as_millis() as i64;
            let (state, first, gap, n) = match take(read.as_ref(), self.rate, n, now, latest) {
                Ok(taken) => taken,
                Err(wait) => return Ok(Err(wait)),
            };
            if self
                .store
                .put_rate(&self.key, &state, read.map(|r| r.version))
                .await?
            {
                return Ok(Ok(Held {
                    next_ms: first as f64,
                    gap_ms: gap,
                    left: n,
                    after: Some(state),
                }));
            }
        }
        // Every write lost to another worker's: the key is busy.
        Ok(Err(self.rate_gap()))
    }

    /// The destination answered 429 (after `hint`, when it said): the key slows down for
    /// every worker, and this one drops the slots it holds.
    pub async fn rate_limited(&self, hint: Option<Duration>) {
        let mut held = self.held.lock().await;
        *held = Held::default();
        for _ in 0..CONTENDED {
            let written = async {
                let read = self.store.rate(&self.key).await?;
                let Some(state) = hit(read.as_ref(), wall_ms(), hint) else {
                    return Ok(true);
                };
                self.store
                    .put_rate(&self.key, &state, read.map(|r| r.version))
                    .await
            };
            match written.await {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(key = %self.key, error = %e, "the rate governor could not record a 429");
                    return;
                }
            }
        }
    }

    /// Give back the slots taken and not used, if no one has taken slots after them.
    pub async fn give_back(&self) {
        let mut held = self.held.lock().await;
        let Some(after) = held.after.filter(|_| held.left > 0) else {
            return;
        };
        let unused = (held.gap_ms * f64::from(held.left)).floor() as i64;
        let back = RateState {
            next_ms: after.next_ms - unused,
            version: after.version + 1,
            ..after
        };
        match self
            .store
            .put_rate(&self.key, &back, Some(after.version))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(key = %self.key, error = %e, "unused slots not given back")
            }
        }
        *held = Held::default();
    }

    fn rate_gap(&self) -> Duration {
        Duration::from_millis(self.rate.gap_ms.ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryRates;

    fn state(next_ms: i64, slow: f64, hit_at_ms: i64) -> RateState {
        RateState {
            next_ms,
            slow,
            hit_at_ms,
            version: 3,
        }
    }

    #[test]
    fn a_rate_no_limit_can_be_made_of_is_no_limit() {
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Rate::per_second(r), None, "{r}");
        }
        assert_eq!(Rate::per_second(4.0).map(|r| r.gap_ms), Some(250.0));
        // The slowest rate keeps a gap of a day, not one no clock holds.
        assert_eq!(
            Rate::per_second(1e-300).map(|r| r.gap_ms),
            Some(86_400_000.0)
        );
    }

    #[test]
    fn an_idle_key_starts_now_and_a_busy_one_after_its_last_slot() {
        let rate = Rate::per_second(10.0).unwrap();
        let (after, first, gap, n) = take(None, rate, 5, 1_000, 3_000).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            (first, gap, after.next_ms, after.version),
            (1_000, 100.0, 1_500, 1)
        );
        // Idle since long ago: now, not the past.
        let old = state(200, 1.0, 0);
        assert_eq!(take(Some(&old), rate, 1, 1_000, 3_000).unwrap().1, 1_000);
        // Busy: after the slots handed out before.
        let busy = state(1_800, 1.0, 0);
        let (after, first, _, _) = take(Some(&busy), rate, 2, 1_000, 3_000).unwrap();
        assert_eq!((first, after.next_ms, after.version), (1_800, 2_000, 4));
        // Near the horizon: only the slots that fall within it.
        let near = state(2_750, 1.0, 0);
        let (after, first, _, n) = take(Some(&near), rate, 5, 1_000, 3_000).unwrap();
        assert_eq!((first, n, after.next_ms), (2_750, 3, 3_050));
    }

    #[test]
    fn a_slot_past_the_horizon_is_not_taken_and_says_how_long_to_wait() {
        let rate = Rate::per_second(10.0).unwrap();
        let far = state(1_000 + 5_000, 1.0, 0);
        assert_eq!(
            take(Some(&far), rate, 1, 1_000, 3_000),
            Err(Duration::from_millis(5_000) - HORIZON / 2)
        );
        // Never sooner than a second: the queue's delay is in whole seconds.
        let near = state(2_500, 1.0, 0);
        assert_eq!(
            take(Some(&near), rate, 1, 1_000, 2_000),
            Err(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_429_moves_the_schedule_past_the_hint_and_halves_the_rate_until_it_wears_off() {
        let rate = Rate::per_second(10.0).unwrap();
        let hit_once = hit(
            Some(&state(900, 1.0, 0)),
            1_000,
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        assert_eq!(
            (hit_once.next_ms, hit_once.slow, hit_once.hit_at_ms),
            (1_300, 2.0, 1_000)
        );
        assert_eq!(
            take(Some(&hit_once), rate, 1, 1_000, 3_000).unwrap().2,
            200.0
        );
        // A second worker told within a quarter second does not slow the key again, nor write
        // when the schedule already waits past its hint.
        assert_eq!(
            hit(Some(&hit_once), 1_200, Some(Duration::from_millis(30))),
            None
        );
        let longer = hit(Some(&hit_once), 1_200, Some(Duration::from_millis(500))).unwrap();
        assert_eq!((longer.next_ms, longer.slow), (1_700, 2.0));
        // One half-life later the slowdown is half what it was: probing back up.
        let later = 1_000 + HALF_LIFE.as_millis() as i64;
        assert!((slow_at(&hit_once, later) - 1.5).abs() < 1e-9);
        assert!((slow_at(&hit_once, later * 100) - 1.0).abs() < 1e-6);
        // A 429 later than that doubles what is left of it.
        let again = hit(Some(&hit_once), 2_000, None).unwrap();
        assert!(again.slow > 3.8 && again.slow < 4.0, "{}", again.slow);
    }

    #[tokio::test]
    async fn workers_sharing_a_key_share_one_schedule() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        let rate = Rate::per_second(40.0).unwrap();
        let a = Governor::new(Arc::clone(&store), "van/k".into(), rate, 10);
        let b = Governor::new(Arc::clone(&store), "van/k".into(), rate, 10);
        let mut slots = Vec::new();
        for _ in 0..12 {
            for g in [&a, &b] {
                match g.admit().await.unwrap() {
                    Admission::At { slot_ms, .. } => slots.push(slot_ms),
                    Admission::Busy(_) => panic!("40 slots a second fit 24 in the horizon"),
                }
            }
        }
        slots.sort_unstable();
        // Never two slots closer than the gap (25 ms, the 1 ms is ceil's rounding).
        for pair in slots.windows(2) {
            assert!(pair[1] - pair[0] >= 24, "{slots:?}");
        }
        // Another key has a schedule of its own.
        let other = Governor::new(Arc::clone(&store), "van/other".into(), rate, 10);
        let Admission::At { wait, .. } = other.admit().await.unwrap() else {
            panic!("an idle key admits at once")
        };
        assert!(wait <= Duration::from_millis(1));
    }

    #[tokio::test]
    async fn a_worker_with_no_slot_in_reach_is_told_to_come_back_later() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        let rate = Rate::per_second(1.0).unwrap();
        let g = Governor::new(store, "hook".into(), rate, 10);
        // One a second: now, +1 s, +2 s (the horizon), then none.
        for _ in 0..3 {
            assert!(matches!(g.admit().await.unwrap(), Admission::At { .. }));
        }
        let Admission::Busy(wait) = g.admit().await.unwrap() else {
            panic!("a slot 3 s away is past the horizon")
        };
        assert!(wait >= Duration::from_millis(1_500), "{wait:?}");
    }

    #[tokio::test]
    async fn a_slot_missed_by_more_than_the_tolerance_is_not_used_late() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        // Two a second: a gap of 500 ms, a tolerance of 250.
        let g = Governor::new(store, "an/k".into(), Rate::per_second(2.0).unwrap(), 10);
        let Admission::At { wait, .. } = g.admit().await.unwrap() else {
            panic!("an idle key admits at once")
        };
        let now = tokio::time::Instant::now();
        let taken = now + wait;
        // Held through a store write of 100 ms: still its turn.
        let late = taken - Duration::from_millis(100);
        assert_eq!(g.keep(Some(late)).await.unwrap(), Turn::At(late));
        // Held through one of a second: the next slot of the schedule, half a second after
        // the one taken, not now (sent now, it would crowd the slot taken last).
        let missed = taken - Duration::from_secs(1);
        let Turn::At(fresh) = g.keep(Some(missed)).await.unwrap() else {
            panic!("the next slot is in reach")
        };
        assert!(
            fresh >= taken + Duration::from_millis(450),
            "{:?}",
            fresh - now
        );
        // None held: a slot of its own.
        assert!(matches!(g.keep(None).await.unwrap(), Turn::At(_)));
    }

    #[test]
    fn a_fast_key_keeps_more_of_a_batch_waiting_for_its_slots() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        let in_flight = |rate: f64| {
            Governor::new(
                Arc::clone(&store),
                "k".into(),
                Rate::per_second(rate).unwrap(),
                10,
            )
            .in_flight()
        };
        assert_eq!(in_flight(15.0), 1);
        assert_eq!(in_flight(100.0), 5);
        assert_eq!(in_flight(200.0), 10);
        assert_eq!(in_flight(1000.0), 10);
    }

    #[tokio::test]
    async fn a_batch_takes_no_more_slots_than_it_has_messages() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        // Half a second at 40/s is 20 slots; a batch of three takes three.
        let g = Governor::new(
            Arc::clone(&store),
            "k".into(),
            Rate::per_second(40.0).unwrap(),
            3,
        );
        let Admission::At { slot_ms, .. } = g.admit().await.unwrap() else {
            panic!("an idle key admits")
        };
        assert_eq!(
            store.rate("k").await.unwrap().unwrap().next_ms,
            slot_ms + 75
        );
        g.admit().await.unwrap();
        g.admit().await.unwrap();
        // A request past the messages' (a retry, a lookup) takes one more.
        g.admit().await.unwrap();
        assert_eq!(
            store.rate("k").await.unwrap().unwrap().next_ms,
            slot_ms + 100
        );
    }

    #[tokio::test]
    async fn a_held_slot_that_has_passed_is_dropped_not_used_late() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        let g = Governor::new(store, "k".into(), Rate::per_second(20.0).unwrap(), 10);
        let Admission::At { slot_ms: first, .. } = g.admit().await.unwrap() else {
            panic!("an idle key admits")
        };
        tokio::time::sleep(Duration::from_millis(130)).await;
        let asked = wall_ms();
        let Admission::At { slot_ms, .. } = g.admit().await.unwrap() else {
            panic!("slots are held")
        };
        // The slots at +50 and +100 ms have passed: the next is +150 ms or later.
        assert!(slot_ms >= first + 150, "{first} {slot_ms}");
        assert!(slot_ms + 25 >= asked, "never more than half a gap late");
    }

    #[tokio::test]
    async fn the_slowest_rate_hands_the_second_request_back_for_a_day_without_overflowing() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        let g = Governor::new(store, "slow".into(), Rate::per_second(1e-300).unwrap(), 10);
        assert!(matches!(g.admit().await.unwrap(), Admission::At { .. }));
        let Admission::Busy(wait) = g.admit().await.unwrap() else {
            panic!("the next slot is a day away")
        };
        assert!(wait > Duration::from_secs(86_000), "{wait:?}");
    }

    #[tokio::test]
    async fn unused_slots_are_given_back_unless_someone_took_slots_after_them() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        let rate = Rate::per_second(20.0).unwrap();
        let a = Governor::new(Arc::clone(&store), "k".into(), rate, 10);
        a.admit().await.unwrap();
        let taken = store.rate("k").await.unwrap().unwrap().next_ms;
        a.give_back().await;
        let back = store.rate("k").await.unwrap().unwrap().next_ms;
        // A block of 10 at 20/s, one used: 9 × 50 ms back.
        assert_eq!(taken - back, 450);

        a.admit().await.unwrap();
        let b = Governor::new(Arc::clone(&store), "k".into(), rate, 10);
        b.admit().await.unwrap();
        let before = store.rate("k").await.unwrap().unwrap();
        a.give_back().await;
        assert_eq!(store.rate("k").await.unwrap().unwrap(), before);
    }

    #[tokio::test]
    async fn a_429_slows_every_worker_of_the_key() {
        let store: Arc<dyn RateStore> = Arc::new(MemoryRates::default());
        let rate = Rate::per_second(50.0).unwrap();
        let a = Governor::new(Arc::clone(&store), "k".into(), rate, 1);
        let b = Governor::new(Arc::clone(&store), "k".into(), rate, 1);
        a.admit().await.unwrap();
        a.rate_limited(Some(Duration::from_millis(100))).await;
        let s = store.rate("k").await.unwrap().unwrap();
        assert_eq!(s.slow, 2.0);
        let (
            Admission::At { slot_ms: first, .. },
            Admission::At {
                slot_ms: second, ..
            },
        ) = (b.admit().await.unwrap(), b.admit().await.unwrap())
        else {
            panic!("slots within the horizon")
        };
        assert!(first >= s.hit_at_ms + 100, "nothing before the hint");
        assert!(second - first >= 39, "twice the gap: {first} {second}");
    }
}
