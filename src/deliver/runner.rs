//! The queue runner. One scheduler thread owns the queue's envelopes: it
//! finds what is due, groups recipients by route into jobs, and applies
//! the outcomes that the worker threads report back: `delivery_workers`
//! remote workers and one for local delivery only, with a cap on the
//! workers one MX domain may hold (see `WorkerKind` and `route_limit`). Every
//! outcome is written to the envelope as soon as it is known, so a delivered
//! recipient is never sent again, also after a restart.
//!
//! Retries back off exponentially from `retry_min` to `retry_max`. The
//! schedule is kept on the monotonic clock: a box whose wall clock starts at
//! 1970 and jumps forward after boot neither floods nor stalls its queue.
//! Expiry after `queue_lifetime` needs both the wall clock and the number of
//! attempts to agree, so a clock jump cannot bounce the whole queue either.
//! At start-up everything is due: a box that rebooted resumes its queue.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::alarm::{build_notice, subject, AlarmPolicy, Alarms, Notice, STATE_FILE};
use super::bounce::build_bounce;
use super::route::{route, Route};
use super::run_job;
use super::{DeliverySettings, ItemResult, Job, JobItem, Outcome, Reporter, RunnerEvent as Event};
use crate::aliases::add_recipient;
use crate::config::Config;
use crate::live::Live;
use crate::smtp::address::Mailbox;
use crate::smtp::command::Body;
use crate::smtp::status::Status;
use crate::spool::queue::{Failure, QueueEnvelope, RecipientState};
use crate::spool::waker::{QueueNews, QueueWaker};
use crate::spool::{NewEntry, Spool, SpoolError};
use crate::time::unix_now;

/// How often new/ is looked at for mail queued by other processes.
const SPOOL_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Messages sent over one connection per job; more make another job, so
/// that several workers can share a large queue for one route.
const MAX_MESSAGES_PER_JOB: usize = 100;

/// Messages per local delivery job: there is no connection to reuse, so
/// a backlog is cut finer and every worker takes part; a job this size
/// shares one fsync of each Maildir directory (see local.rs).
const MAX_LOCAL_MESSAGES_PER_JOB: usize = super::local::SYNC_BATCH;

/// Which jobs a worker takes.
///
/// Local delivery never waits behind remote delivery: one worker takes
/// local jobs only, so a local job always has a worker that no silent
/// server can hold, and it needs no guess at which destinations are slow.
/// The `delivery_workers` remote workers take local jobs too when there
/// are some, so that a local backlog is still shared (see
/// MAX_LOCAL_MESSAGES_PER_JOB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerKind {
    Local,
    Remote,
}

/// The jobs waiting for a worker, and how many workers each route has now
/// (what decides which waiting job a worker may take).
struct WaitingJobs {
    waiting: VecDeque<Job>,
    busy: HashMap<Route, usize>,
    /// The number of remote workers (`delivery_workers`).
    remote_workers: usize,
    /// The config has push routes: the smarthost leaves them a worker.
    push_routes: bool,
}

impl WaitingJobs {
    fn new(remote_workers: usize) -> WaitingJobs {
        WaitingJobs {
            waiting: VecDeque::new(),
            busy: HashMap::new(),
            remote_workers,
            push_routes: false,
        }
    }

    /// The first waiting job that a `kind` worker may take, in the order
    /// they were queued; the job's route counts one worker more.
    fn take(&mut self, kind: WorkerKind) -> Option<Job> {
        let pos = self.waiting.iter().position(|job| match kind {
            WorkerKind::Local => job.route == Route::Local,
            WorkerKind::Remote => {
                let busy = self.busy.get(&job.route).copied().unwrap_or(0);
                busy < route_limit(&job.route, self.remote_workers, self.push_routes)
            }
        })?;
        let job = self.waiting.remove(pos)?;
        *self.busy.entry(job.route.clone()).or_default() += 1;
        Some(job)
    }

    /// A worker has finished a job on `route`.
    fn done(&mut self, route: &Route) {
        if let Some(busy) = self.busy.get_mut(route) {
            *busy -= 1;
            if *busy == 0 {
                self.busy.remove(route);
            }
        }
    }

    /// A waiting job for `route`, for a worker that has a connection open
    /// there (it counts for the route already).
    fn take_for(&mut self, route: &Route) -> Option<Job> {
        let pos = self.waiting.iter().position(|j| j.route == *route)?;
        self.waiting.remove(pos)
    }
}

/// The most workers one route may have at once. An MX domain leaves one
/// remote worker free for the other domains: however many of its messages
/// are due and however slow its servers are, mail for elsewhere still has a
/// worker (with one remote worker, there is no one to leave). The smarthost
/// takes every non-local recipient when it is set, so no other remote
/// route competes with it and it may use every worker, but where push
/// routes are configured: a smarthost that hangs must not hold the phone's
/// alert too. Local jobs have their own worker and are never held long.
fn route_limit(route: &Route, remote_workers: usize, push_routes: bool) -> usize {
    match route {
        Route::Local => usize::MAX,
        Route::Smarthost if push_routes => remote_workers.saturating_sub(1).max(1),
        Route::Smarthost => remote_workers,
        // A push service is one more destination like a domain: a slow one
        // leaves a worker for the others.
        Route::Mx(_) | Route::Push(_) => remote_workers.saturating_sub(1).max(1),
    }
}

/// The [`WaitingJobs`] behind a lock, shared between the scheduler (which
/// pushes jobs) and the workers (which wait here for one they may take).
struct SharedJobs {
    jobs: Mutex<WaitingJobs>,
    /// Signalled when a job is queued or a worker leaves a route: a
    /// waiting worker may have something to take.
    changed: Condvar,
}

impl SharedJobs {
    fn new(remote_workers: usize) -> SharedJobs {
        SharedJobs {
            jobs: Mutex::new(WaitingJobs::new(remote_workers)),
            changed: Condvar::new(),
        }
    }

    fn push(&self, job: Job) {
        self.lock().waiting.push_back(job);
        // All: the first to wake may be a worker that may not take it.
        self.changed.notify_all();
    }

    /// Waits for a job that a `kind` worker may take.
    fn take(&self, kind: WorkerKind) -> Job {
        let mut jobs = self.lock();
        loop {
            if let Some(job) = jobs.take(kind) {
                return job;
            }
            jobs = self.changed.wait(jobs).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn done(&self, route: &Route) {
        self.lock().done(route);
        self.changed.notify_all();
    }

    fn take_for(&self, route: &Route) -> Option<Job> {
        self.lock().take_for(route)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WaitingJobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A message whose recipients are being delivered.
struct InFlight {
    envelope: QueueEnvelope,
    /// Items handed out and not reported yet.
    outstanding: usize,
    /// The longest wait a server asked for (Retry-After), bounded.
    not_before: Duration,
}

/// Starts the scheduler and the workers; the queue is run at once. The
/// waker returned is how the queue's news (an entry queued, a flush)
/// reaches the scheduler.
pub fn start(
    settings: Arc<Live<DeliverySettings>>,
    spool: Arc<Spool>,
) -> std::io::Result<QueueWaker> {
    let (events, receiver) = channel();
    // The number of workers is fixed at start-up; SIGHUP does not change it.
    let remote_workers = settings.get().config.delivery_workers;
    let jobs = Arc::new(SharedJobs::new(remote_workers));
    let workers = (0..remote_workers)
        .map(|n| (format!("delivery {n}"), WorkerKind::Remote))
        .chain([("local delivery".to_string(), WorkerKind::Local)]);
    for (name, kind) in workers {
        let jobs = Arc::clone(&jobs);
        let results = events.clone();
        let settings = Arc::clone(&settings);
        let spool = Arc::clone(&spool);
        thread::Builder::new()
            .name(name)
            .spawn(move || worker(&jobs, kind, &settings, &spool, results))?;
    }
    // The runner listens to the queue's news among its workers' results.
    let waker = QueueWaker::new(move |news| {
        let _ = events.send(Event::News(news));
    });
    let alarms = load_alarms(&spool);
    let scheduler = Scheduler {
        settings,
        spool,
        jobs,
        in_flight: HashMap::new(),
        retry_at: HashMap::new(),
        queued: Vec::new(),
        alarms,
    };
    thread::Builder::new()
        .name("queue".to_string())
        .spawn(move || scheduler.run(receiver))?;
    Ok(waker)
}

fn worker(
    jobs: &SharedJobs,
    kind: WorkerKind,
    settings: &Live<DeliverySettings>,
    spool: &Arc<Spool>,
    results: Sender<Event>,
) {
    loop {
        let job = jobs.take(kind);
        // A job keeps the settings it started with, whatever SIGHUP does.
        let current = settings.get();
        let route = job.route.clone();
        let mut reporter = Reporter::new(results.clone());
        reporter.took(&job);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(&current, spool, job, &mut reporter, &mut || {
                jobs.take_for(&route)
            });
        }));
        if run.is_err() {
            log::error!("delivery to {route:?} panicked; its messages are deferred");
        }
        jobs.done(&route);
        // Dropping the reporter answers whatever the job left unanswered.
    }
}

/// What the scheduler thread owns: the messages out with the workers,
/// when each deferred one is due again, and the alarms' state.
struct Scheduler {
    settings: Arc<Live<DeliverySettings>>,
    spool: Arc<Spool>,
    jobs: Arc<SharedJobs>,
    in_flight: HashMap<String, InFlight>,
    /// When a deferred message is due again (monotonic clock).
    retry_at: HashMap<String, Instant>,
    /// Ids queued since the last dispatch, by this process.
    queued: Vec<String>,
    /// Which destinations are stuck, for `alarm_to`.
    alarms: Alarms,
}

/// The alarms' state as the last run left it in the spool.
fn load_alarms(spool: &Spool) -> Alarms {
    match spool.read_state(STATE_FILE) {
        Ok(Some(text)) => {
            let (alarms, bad) = Alarms::parse(&text);
            if !bad.is_empty() {
                log::warn!("spool_dir/{STATE_FILE}: lines {bad:?} cannot be read; skipped");
            }
            alarms
        }
        Ok(None) => Alarms::default(),
        Err(e) => {
            log::error!("{e}; alarms start afresh");
            Alarms::default()
        }
    }
}

impl Scheduler {
    /// The current config (SIGHUP may replace it between two uses).
    fn config(&self) -> Arc<Config> {
        Arc::clone(&self.settings.get().config)
    }

    /// Mail this process queues comes by its id and is dispatched at once.
    /// The whole of new/ is read (a scan) only at start-up, on a flush,
    /// when a retry is due, every `queue_interval`, and when new/ changed
    /// in a way this process was not told of: mail that `sendmail` (another
    /// process) queued shows as a change of new/'s mtime, looked at each
    /// second. Under load the runner's own renames and removals change it
    /// too, so that costs at most a scan a second, where a scan per new
    /// message made the runner read a long directory for every message.
    fn run(mut self, events: Receiver<Event>) {
        let mut scan_due = true;
        let mut seen_change = None;
        let mut seen_drop = None;
        let mut looked = None::<Instant>;
        let mut last_scan = Instant::now();
        loop {
            if looked.is_none_or(|at| at.elapsed() >= SPOOL_WATCH_INTERVAL) {
                // Looked at before the scan, so that a change during the
                // scan shows at the next look.
                looked = Some(Instant::now());
                let change = self.spool.last_change();
                if change != seen_change {
                    seen_change = change;
                    scan_due = true;
                }
                // Submissions of users who may not write the queue itself.
                let dropped = self.spool.maildrop_change();
                if dropped != seen_drop {
                    seen_drop = dropped;
                    match self.spool.pick_up() {
                        Ok(ids) => self.queued.extend(ids),
                        Err(e) => log::error!("cannot pick up the maildrop: {e}"),
                    }
                }
            }
            let now = Instant::now();
            if last_scan.elapsed() >= self.config().queue_interval
                || self.retry_at.values().any(|at| *at <= now)
            {
                scan_due = true;
            }
            let ids = if scan_due {
                last_scan = Instant::now();
                self.queued.clear();
                match self.spool.list() {
                    Ok(ids) => {
                        // Entries removed by hand leave no schedule behind.
                        self.retry_at.retain(|id, _| ids.binary_search(id).is_ok());
                        let repeat = self.config().alarm_repeat.as_secs();
                        self.alarms.prune(
                            |id| ids.binary_search_by(|i| i.as_str().cmp(id)).is_ok(),
                            unix_now(),
                            repeat,
                        );
                        ids
                    }
                    Err(e) => {
                        log::error!("cannot list the queue: {e}");
                        Vec::new()
                    }
                }
            } else {
                std::mem::take(&mut self.queued)
            };
            let announced = !scan_due;
            scan_due = false;
            if !ids.is_empty() {
                let dispatch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.dispatch(ids, announced)
                }));
                if dispatch.is_err() {
                    log::error!("queue run panicked; retrying at the next scan");
                    scan_due = true;
                }
            }
            // Wait for the first event, then take what else has come, so
            // that messages queued together go out in the same jobs.
            let first = match events.recv_timeout(self.next_wake()) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            for event in std::iter::once(first).chain(events.try_iter()) {
                match event {
                    Event::News(QueueNews::Queued(id)) => self.queued.push(id),
                    Event::News(QueueNews::Flush) => {
                        log::info!("flushing the queue");
                        self.retry_at.clear();
                        scan_due = true;
                    }
                    Event::Done(result) => self.apply(result),
                }
            }
        }
    }

    /// Until the next retry, at most `queue_interval`, and at most a
    /// second so that new/ is watched.
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        self.retry_at
            .values()
            .map(|at| at.saturating_duration_since(now))
            .min()
            .unwrap_or(self.config().queue_interval)
            .min(self.config().queue_interval)
            .min(SPOOL_WATCH_INTERVAL)
            .max(Duration::from_millis(10))
    }

    /// Hands the queued recipients of these messages, those that are due,
    /// to the workers. `announced`: this process queued them (they came by
    /// their ids, not from a scan).
    fn dispatch(&mut self, ids: Vec<String>, announced: bool) {
        let now = Instant::now();
        // A reload may add or remove push routes.
        self.jobs.lock().push_routes = !self.config().route.is_empty();
        let mut buckets: HashMap<Route, Vec<JobItem>> = HashMap::new();
        for id in ids {
            if self.in_flight.contains_key(&id)
                || self.retry_at.get(&id).is_some_and(|at| *at > now)
            {
                continue;
            }
            // Due: whatever reading it brings, its old schedule is over (a
            // past-due time left behind would make every loop a scan).
            self.retry_at.remove(&id);
            let mut envelope = match self.spool.read_envelope(&id) {
                Ok(envelope) => envelope,
                Err(e) if e.is_corrupt_envelope() => {
                    match self.spool.set_aside(&id) {
                        Ok(dir) => log::error!("{e}; moved to {}", dir.display()),
                        Err(moving) => log::error!("{e}; cannot set it aside: {moving}"),
                    }
                    continue;
                }
                // Finished since it was listed or announced.
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    log::error!("{id}: {e}");
                    continue;
                }
            };
            if !envelope.is_done() && self.expired(&envelope) {
                log::warn!("{id}: expired after {} attempts", max_attempts(&envelope));
                for r in &mut envelope.recipients {
                    if r.state == RecipientState::Queued {
                        r.state = RecipientState::Failed;
                        // RFC 3463 4.4.7: delivery time expired.
                        r.last_error = Some(Failure::ours(
                            Status::new(4, 4, 7),
                            format_args!(
                                "message expired after {} attempts; last error: {}",
                                r.attempts,
                                r.last_error.as_ref().map_or("none", |e| e.text.as_str())
                            ),
                        ));
                    }
                }
            }
            if envelope.is_done() {
                self.finish(envelope);
                continue;
            }
            let items = self.items(&envelope, announced);
            for (route, item) in &items {
                buckets.entry(route.clone()).or_default().push(item.clone());
            }
            self.in_flight.insert(
                id,
                InFlight {
                    envelope,
                    outstanding: items.len(),
                    not_before: Duration::ZERO,
                },
            );
        }
        let mut routes: Vec<_> = buckets.into_iter().collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        for (route, items) in routes {
            let per_job = match route {
                Route::Local => MAX_LOCAL_MESSAGES_PER_JOB,
                _ => MAX_MESSAGES_PER_JOB,
            };
            for chunk in items.chunks(per_job) {
                self.jobs.push(Job {
                    route: route.clone(),
                    items: chunk.to_vec(),
                });
            }
        }
    }

    /// A message's queued recipients, grouped by route.
    fn items(&self, envelope: &QueueEnvelope, announced: bool) -> Vec<(Route, JobItem)> {
        let mut grouped: Vec<(Route, JobItem)> = Vec::new();
        let config = self.config();
        for (index, r) in envelope.recipients.iter().enumerate() {
            if r.state != RecipientState::Queued {
                continue;
            }
            let route = route(&config, &r.address);
            let first_attempt = announced && r.attempts == 0;
            match grouped.iter_mut().find(|(d, _)| *d == route) {
                Some((_, item)) => {
                    item.recipients.push((index, r.address.clone()));
                    item.first_attempt &= first_attempt;
                }
                None => grouped.push((
                    route,
                    JobItem {
                        id: envelope.id.clone(),
                        sender: envelope.sender_text(),
                        eight_bit: envelope.body == Some(Body::EightBitMime),
                        size: envelope.size,
                        arrival: envelope.arrival,
                        recipients: vec![(index, r.address.clone())],
                        first_attempt,
                    },
                )),
            }
        }
        grouped
    }

    /// Applies one message's outcomes and writes them down at once.
    fn apply(&mut self, result: ItemResult) {
        self.watch(&result);
        let config = self.config();
        let Some(flight) = self.in_flight.get_mut(&result.id) else {
            log::error!("{}: result for a message not in flight", result.id);
            return;
        };
        let now = unix_now();
        for (index, outcome) in result.outcomes {
            let Some(r) = flight.envelope.recipients.get_mut(index) else {
                continue;
            };
            r.attempts += 1;
            match outcome {
                Outcome::Delivered(_) | Outcome::Forwarded(_) => {
                    r.state = RecipientState::Delivered;
                    r.next_attempt = 0;
                    r.last_error = None;
                }
                Outcome::Failed(failure) => {
                    r.state = RecipientState::Failed;
                    r.next_attempt = 0;
                    r.last_error = Some(failure);
                }
                Outcome::Deferred(failure) => {
                    r.next_attempt = now + backoff(&config, r.attempts).as_secs();
                    r.last_error = Some(failure);
                }
                Outcome::Postponed(failure, wait) => {
                    // The server's wait, within retry_max; never sooner
                    // than the backoff would try.
                    let wait = wait.min(config.retry_max).max(backoff(&config, r.attempts));
                    r.next_attempt = now + wait.as_secs();
                    r.last_error = Some(failure);
                    flight.not_before = flight.not_before.max(wait);
                }
            }
        }
        flight.outstanding = flight.outstanding.saturating_sub(1);
        if flight.outstanding > 0 {
            let envelope = flight.envelope.clone();
            self.save(&envelope);
            return;
        }
        let flight = self.in_flight.remove(&result.id).expect("in flight");
        if flight.envelope.is_done() {
            self.finish(flight.envelope);
            return;
        }
        self.save(&flight.envelope);
        // The message's next attempt serves all its recipients: after the
        // longest wait one of them was asked for.
        let delay = backoff(&config, max_attempts(&flight.envelope)).max(flight.not_before);
        self.retry_at.insert(result.id, Instant::now() + delay);
    }

    /// Feeds one message's outcomes to the alarms, before they are applied
    /// (a recipient's attempts still say whether it had failed before), and
    /// queues the notices that are due.
    fn watch(&mut self, result: &ItemResult) {
        let settings = self.settings.get();
        let config = &settings.config;
        let Some(alarm_to) = config.alarm_to.clone() else {
            return;
        };
        let Some(flight) = self.in_flight.get(&result.id) else {
            return;
        };
        let envelope = &flight.envelope;
        // Bounces and alarms (the null sender) neither raise nor clear an
        // alarm: an alarm that is stuck itself never reports on its own way.
        if envelope.sender.is_none() {
            return;
        }
        let now = unix_now();
        let policy = AlarmPolicy {
            after: config.alarm_after.as_secs(),
            repeat: config.alarm_repeat.as_secs(),
        };
        let mut notices: Vec<Notice> = Vec::new();
        for (index, outcome) in &result.outcomes {
            let Some(r) = envelope.recipients.get(*index) else {
                continue;
            };
            let destination = route(config, &r.address).describe(config);
            let notice = match outcome {
                Outcome::Delivered(_) => self.alarms.delivered(&destination, &result.id, now),
                // Refused for good, bounced or sent to a push route's
                // fallback: no success, and nothing left to wait for.
                Outcome::Failed(_) | Outcome::Forwarded(_) => {
                    self.alarms.failed(&destination, &result.id);
                    None
                }
                Outcome::Deferred(failure) | Outcome::Postponed(failure, _) => {
                    // One that had failed before has been failing since its
                    // message came, as far as a restarted runner can tell.
                    let since = if r.attempts > 0 {
                        envelope.arrival
                    } else {
                        now
                    };
                    self.alarms
                        .deferred(&destination, &result.id, since, &failure.text);
                    self.alarms.due(&destination, now, policy)
                }
            };
            // One notice per destination, however many recipients went there.
            let new = notice.filter(|n| {
                !notices.iter().any(|o| {
                    o.destination() == n.destination()
                        && std::mem::discriminant(o) == std::mem::discriminant(n)
                })
            });
            notices.extend(new);
        }
        let mut changed = false;
        for notice in &notices {
            changed |= self.queue_notice(&settings, &alarm_to, notice, now, policy);
        }
        if changed {
            let state = self.alarms.to_text(now, policy.repeat);
            if let Err(e) = self.spool.write_state(STATE_FILE, &state) {
                log::error!("{e}; an alarm may be repeated after a restart");
            }
        }
    }

    /// Queues an alarm or recovery notice to `alarm_to`, through any
    /// destination but the one it is about; true when that changed what
    /// the state file holds (queued, or a recovery notice dropped).
    fn queue_notice(
        &mut self,
        settings: &DeliverySettings,
        alarm_to: &Mailbox,
        notice: &Notice,
        now: u64,
        policy: AlarmPolicy,
    ) -> bool {
        let config = &settings.config;
        let mut recipients = Vec::new();
        add_recipient(
            config,
            settings.aliases.as_deref(),
            &mut recipients,
            alarm_to.clone(),
        );
        recipients.retain(|r| route(config, r).describe(config) != notice.destination());
        if recipients.is_empty() {
            if self.alarms.refused(notice) {
                let what = match notice {
                    Notice::Stuck { .. } => "alarm",
                    Notice::Recovered { .. } => "recovery notice",
                };
                log::warn!(
                    "no {what} about mail to {}: alarm_to <{alarm_to}> goes there too",
                    notice.destination()
                );
            }
            return matches!(notice, Notice::Recovered { .. });
        }
        let text = build_notice(&config.hostname, &alarm_to.to_string(), notice, now, policy);
        // The null reverse-path, as a bounce's (RFC 5321 4.5.5): an alarm
        // that cannot be delivered is never bounced.
        let entry = NewEntry::local(&config.hostname, None, recipients, &text);
        match self.spool.put(&entry, &text) {
            Ok(id) => {
                log::warn!("{id}: alarm to <{alarm_to}>: {}", subject(notice, now));
                self.queued.push(id);
                self.alarms.sent(notice, now);
                true
            }
            Err(e) => {
                // Not marked sent: it is due again at the next outcome.
                log::error!("cannot queue an alarm about {}: {e}", notice.destination());
                false
            }
        }
    }

    /// Every recipient is delivered or failed: bounce the failed ones, once,
    /// and take the message out of the queue. Where that fails, the outcomes
    /// are saved, so that no delivered recipient is ever sent to again.
    fn finish(&mut self, envelope: QueueEnvelope) {
        let id = envelope.id.clone();
        self.retry_at.remove(&id);
        let failed = envelope
            .recipients
            .iter()
            .any(|r| r.state == RecipientState::Failed);
        if failed {
            if envelope.sender.is_none() {
                log::warn!("{id}: undeliverable bounce (null sender), dropped");
            } else if let Err(e) = self.queue_bounce(&envelope) {
                // Keep the message; the bounce is tried again later.
                log::error!("{id}: cannot queue a bounce: {e}");
                self.save(&envelope);
                self.retry_at
                    .insert(id, Instant::now() + self.config().retry_min);
                return;
            }
        }
        self.alarms.forget(&id);
        match self.spool.remove(&id) {
            Ok(()) => log::info!("{id}: removed"),
            Err(e) => {
                log::error!("{id}: {e}");
                self.save(&envelope);
            }
        }
    }

    fn save(&self, envelope: &QueueEnvelope) {
        if let Err(e) = self.spool.update_envelope(envelope) {
            log::error!("{}: {e}", envelope.id);
        }
    }

    fn queue_bounce(&mut self, envelope: &QueueEnvelope) -> Result<(), SpoolError> {
        let mut original = self.spool.open_message(&envelope.id, envelope.size)?;
        let settings = self.settings.get();
        let config = &settings.config;
        let text = build_bounce(&config.hostname, envelope, &mut original, unix_now());
        let sender = envelope.sender.clone().expect("not a null sender");
        // To the sender as any mail to it goes: a local sender (root@box)
        // through the aliases, to whoever reads root's mail.
        let mut recipients = Vec::new();
        add_recipient(config, settings.aliases.as_deref(), &mut recipients, sender);
        // RFC 5321 4.5.5: a bounce has the null reverse-path.
        let bounce = NewEntry::local(&config.hostname, None, recipients, &text);
        let bounce_id = self.spool.put(&bounce, &text)?;
        log::info!(
            "{}: sender non-delivery notification: {bounce_id}",
            envelope.id
        );
        self.queued.push(bounce_id);
        Ok(())
    }

    fn expired(&self, envelope: &QueueEnvelope) -> bool {
        is_expired(&self.config(), envelope, unix_now())
    }
}

/// Older than `queue_lifetime` by the wall clock (`now`), and tried as often
/// as the retry schedule fits into that time: both must hold, so neither a
/// clock that jumps forward nor a box that was off for days expires mail
/// early. A wall clock behind the arrival time counts as not knowing; then
/// the attempts decide.
pub fn is_expired(config: &Config, envelope: &QueueEnvelope, now: u64) -> bool {
    let lifetime = config.queue_lifetime;
    if max_attempts(envelope) < attempts_spanning(config, lifetime) {
        return false;
    }
    match now.checked_sub(envelope.arrival) {
        Some(age) => age >= lifetime.as_secs(),
        None => true,
    }
}

fn max_attempts(envelope: &QueueEnvelope) -> u32 {
    envelope
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Queued)
        .map(|r| r.attempts)
        .max()
        .unwrap_or(0)
}

/// The wait after the `attempts`-th failed attempt: `retry_min` doubled
/// each time, at most `retry_max`.
pub fn backoff(config: &Config, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    config
        .retry_min
        .saturating_mul(1 << doublings)
        .min(config.retry_max)
}

/// How many attempts the retry schedule makes in `lifetime`.
pub fn attempts_spanning(config: &Config, lifetime: Duration) -> u32 {
    let mut waited = Duration::ZERO;
    let mut attempts = 1;
    while waited < lifetime && attempts < 100_000 {
        waited += backoff(config, attempts);
        attempts += 1;
    }
    attempts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("t.conf")).unwrap()
    }

    fn job(route: Route, id: &str) -> Job {
        Job {
            route,
            items: vec![JobItem {
                id: id.to_string(),
                sender: String::new(),
                eight_bit: false,
                size: 1,
                arrival: 0,
                recipients: Vec::new(),
                first_attempt: true,
            }],
        }
    }

    fn mx(domain: &str) -> Route {
        Route::Mx(domain.to_string())
    }

    /// The id of the job a `kind` worker takes now, if any.
    fn take(jobs: &mut WaitingJobs, kind: WorkerKind) -> Option<String> {
        jobs.take(kind).map(|job| job.items[0].id.clone())
    }

    #[test]
    fn local_jobs_have_a_worker_that_never_takes_remote_ones() {
        let mut jobs = WaitingJobs::new(2);
        jobs.waiting.push_back(job(mx("slow.test"), "remote"));
        jobs.waiting.push_back(job(Route::Smarthost, "relayed"));
        jobs.waiting.push_back(job(Route::Local, "local"));
        // Behind remote jobs, and with every remote worker busy.
        assert_eq!(take(&mut jobs, WorkerKind::Local).as_deref(), Some("local"));
        assert_eq!(take(&mut jobs, WorkerKind::Local), None);
        // Remote workers take local jobs too, in queue order.
        jobs.waiting.push_back(job(Route::Local, "local 2"));
        assert_eq!(
            take(&mut jobs, WorkerKind::Remote).as_deref(),
            Some("remote")
        );
        assert_eq!(
            take(&mut jobs, WorkerKind::Remote).as_deref(),
            Some("relayed")
        );
        assert_eq!(
            take(&mut jobs, WorkerKind::Remote).as_deref(),
            Some("local 2")
        );
    }

    #[test]
    fn one_mx_domain_leaves_a_worker_for_the_others() {
        let mut jobs = WaitingJobs::new(2);
        for id in ["slow 1", "slow 2", "slow 3"] {
            jobs.waiting.push_back(job(mx("slow.test"), id));
        }
        jobs.waiting.push_back(job(mx("healthy.test"), "healthy"));
        assert_eq!(
            take(&mut jobs, WorkerKind::Remote).as_deref(),
            Some("slow 1")
        );
        // The second worker passes over slow.test's other jobs.
        assert_eq!(
            take(&mut jobs, WorkerKind::Remote).as_deref(),
            Some("healthy")
        );
        // Nothing else may go now, even to a third worker.
        assert_eq!(take(&mut jobs, WorkerKind::Remote), None);
        // The worker on slow.test reuses its connection: no worker more.
        assert_eq!(
            jobs.take_for(&mx("slow.test"))
                .map(|j| j.items[0].id.clone()),
            Some("slow 2".to_string())
        );
        assert_eq!(take(&mut jobs, WorkerKind::Remote), None);
        jobs.done(&mx("healthy.test"));
        assert_eq!(take(&mut jobs, WorkerKind::Remote), None);
        jobs.done(&mx("slow.test"));
        assert_eq!(
            take(&mut jobs, WorkerKind::Remote).as_deref(),
            Some("slow 3")
        );
        assert!(jobs.waiting.is_empty());
        jobs.done(&mx("slow.test"));
        assert!(jobs.busy.is_empty());
    }

    #[test]
    fn route_limits() {
        // With one remote worker there is no one to leave free.
        assert_eq!(route_limit(&mx("a.test"), 1, false), 1);
        assert_eq!(route_limit(&mx("a.test"), 2, false), 1);
        assert_eq!(route_limit(&mx("a.test"), 4, false), 3);
        // The smarthost is the one remote route when it is set.
        assert_eq!(route_limit(&Route::Smarthost, 2, false), 2);
        // ...but for push routes, which then have a worker of their own.
        assert_eq!(route_limit(&Route::Smarthost, 2, true), 1);
        assert_eq!(route_limit(&Route::Smarthost, 1, true), 1);
        assert_eq!(route_limit(&Route::Push("*@push".into()), 3, true), 2);
        assert_eq!(route_limit(&Route::Local, 2, false), usize::MAX);
        let mut jobs = WaitingJobs::new(2);
        for id in ["r1", "r2", "r3"] {
            jobs.waiting.push_back(job(Route::Smarthost, id));
        }
        assert_eq!(take(&mut jobs, WorkerKind::Remote).as_deref(), Some("r1"));
        assert_eq!(take(&mut jobs, WorkerKind::Remote).as_deref(), Some("r2"));
        assert_eq!(take(&mut jobs, WorkerKind::Remote), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let c = config("retry_min = 1m\nretry_max = 1h\n");
        let waits: Vec<u64> = (1..=8).map(|n| backoff(&c, n).as_secs() / 60).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&c, u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn expiry_survives_a_clock_jump() {
        use crate::smtp::address::parse_mailbox;
        use crate::spool::queue::Recipient;
        let c = config("retry_min = 1m\nretry_max = 1h\nqueue_lifetime = 5d\n");
        let needed = attempts_spanning(&c, c.queue_lifetime);
        let envelope = |arrival: u64, attempts: u32| {
            let mut r = Recipient::new(parse_mailbox("a@b.test").unwrap());
            r.attempts = attempts;
            QueueEnvelope {
                id: "X".into(),
                arrival,
                client: String::new(),
                helo: String::new(),
                sender: None,
                body: None,
                size: 1,
                recipients: vec![r],
            }
        };
        let now = 1_795_364_407; // 2026
                                 // Queued at boot with the clock at 1970, then the clock was set: young.
        assert!(!is_expired(&c, &envelope(600, 3), now));
        // Tried all along for five days: old.
        assert!(is_expired(&c, &envelope(now - 5 * 86400, needed), now));
        // Tried enough, but the wall clock says a day: not yet.
        assert!(!is_expired(&c, &envelope(now - 86400, needed), now));
        // The clock went backwards past the arrival: the attempts decide.
        assert!(is_expired(&c, &envelope(now + 3600, needed), now));
        assert!(!is_expired(&c, &envelope(now + 3600, needed - 1), now));
    }

    #[test]
    fn lifetime_in_attempts() {
        let c = config("retry_min = 1m\nretry_max = 1h\n");
        // 1+2+4+8+16+32 = 63 minutes in six attempts, then an hour each:
        // five days are 7200 minutes, 7137 after the sixth attempt, 119 hours.
        assert_eq!(attempts_spanning(&c, Duration::from_secs(63 * 60)), 7);
        assert_eq!(
            attempts_spanning(&c, Duration::from_secs(5 * 86400)),
            7 + 119
        );
    }
}
