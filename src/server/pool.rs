//! A bounded pool of session threads. At most `max` jobs are in the pool at
//! once; a job offered beyond that is handed back (the listener then answers
//! 421), never queued to wait. Threads are started on demand, reused for
//! later jobs, and end after being idle for a while, so an idle server holds
//! no session threads.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Stack of a session thread: sessions keep their buffers on the heap.
const SESSION_STACK_SIZE: usize = 256 * 1024;

pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    job_ready: Condvar,
    /// A job ended: there may be room.
    room: Condvar,
    max: usize,
    idle_timeout: Duration,
}

#[derive(Default)]
struct State {
    /// Jobs accepted and not finished: waiting in `jobs` or running.
    busy: usize,
    /// Threads waiting for a job.
    idle: usize,
    jobs: VecDeque<Job>,
    /// Since when the pool has been full without a break, while someone
    /// waits for room.
    full_since: Option<Instant>,
}

impl Pool {
    pub fn new(max: usize, idle_timeout: Duration) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                job_ready: Condvar::new(),
                room: Condvar::new(),
                max,
                idle_timeout,
            }),
        }
    }

    /// Runs `job` on a pool thread, or hands it back when the pool is full
    /// (or no thread could be started).
    pub fn try_run(&self, job: Job) -> Result<(), Job> {
        let mut state = self.shared.lock();
        if state.busy >= self.shared.max {
            return Err(job);
        }
        state.full_since = None;
        if state.jobs.len() < state.idle {
            state.busy += 1;
            state.jobs.push_back(job);
            self.shared.job_ready.notify_one();
            return Ok(());
        }
        // Every thread is busy: start one more, with this job as its first.
        let shared = Arc::clone(&self.shared);
        let job = Arc::new(Mutex::new(Some(job)));
        let handed = Arc::clone(&job);
        let spawned = thread::Builder::new()
            .name("session".to_string())
            .stack_size(SESSION_STACK_SIZE)
            .spawn(move || {
                let first = handed.lock().ok().and_then(|mut j| j.take());
                worker(shared, first)
            });
        match spawned {
            Ok(_) => {
                state.busy += 1;
                Ok(())
            }
            Err(e) => {
                log::error!("cannot start a session thread: {e}");
                let job = job.lock().ok().and_then(|mut j| j.take());
                Err(job.expect("the thread never started"))
            }
        }
    }

    /// Like [`Pool::try_run`], but a job that finds the pool full waits up
    /// to `grace` for room: a client that got its 221 may connect again
    /// before the thread that served it has finished closing, and a busy
    /// machine can take a while to run that thread. When the pool has been
    /// full for `grace` already (all places held, as in a flood), jobs are
    /// handed back at once.
    pub fn run_within(&self, job: Job, grace: Duration) -> Result<(), Job> {
        let mut job = job;
        loop {
            job = match self.try_run(job) {
                Ok(()) => return Ok(()),
                Err(job) => job,
            };
            let mut state = self.shared.lock();
            if state.busy < self.shared.max {
                // Not full: no thread could be started, which waiting
                // does not mend.
                return Err(job);
            }
            let now = Instant::now();
            let deadline = *state.full_since.get_or_insert(now) + grace;
            if now >= deadline {
                return Err(job);
            }
            let (guard, _) = self
                .shared
                .room
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            drop(guard);
        }
    }

    /// Jobs waiting or running now.
    pub fn busy(&self) -> usize {
        self.shared.lock().busy
    }
}

impl Shared {
    /// The state, also after a job panicked while another thread held the lock
    /// (it never does: jobs run unlocked, but a poisoned lock must not stop the pool).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn worker(shared: Arc<Shared>, mut job: Option<Job>) {
    loop {
        if let Some(job) = job.take() {
            // The job guards itself; this only keeps the count right if it does not.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            shared.lock().busy -= 1;
            shared.room.notify_all();
        }
        let mut state = shared.lock();
        state.idle += 1;
        loop {
            if let Some(next) = state.jobs.pop_front() {
                state.idle -= 1;
                job = Some(next);
                break;
            }
            let (guard, wait) = shared
                .job_ready
                .wait_timeout(state, shared.idle_timeout)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = guard;
            if wait.timed_out() && state.jobs.is_empty() {
                state.idle -= 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn full_pool_hands_jobs_back_and_recovers() {
        let pool = Pool::new(2, Duration::from_millis(200));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        for n in 0..2 {
            let release = Arc::clone(&release_rx);
            let done = done_tx.clone();
            assert!(pool
                .try_run(Box::new(move || {
                    release.lock().unwrap().recv().unwrap();
                    done.send(n).unwrap();
                }))
                .is_ok());
        }
        assert!(pool.try_run(Box::new(|| {})).is_err());
        release_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        // A panicking job frees its place too.
        while pool.busy() > 1 {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(pool.try_run(Box::new(|| panic!("test panic"))).is_ok());
        release_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        while pool.busy() > 0 {
            thread::sleep(Duration::from_millis(5));
        }
        let done = done_tx.clone();
        assert!(pool
            .try_run(Box::new(move || done.send(7).unwrap()))
            .is_ok());
        assert_eq!(done_rx.recv().unwrap(), 7);
    }

    #[test]
    fn a_full_pool_gives_a_moment_for_room_but_not_to_a_flood() {
        let pool = Pool::new(1, Duration::from_millis(200));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        assert!(pool
            .try_run(Box::new(move || release_rx.recv().unwrap()))
            .is_ok());
        // The place frees up within the grace time: the job runs.
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            release_tx.send(()).unwrap();
        });
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        assert!(pool
            .run_within(
                Box::new(move || {
                    done_tx.send(()).unwrap();
                    hold_rx.recv().unwrap();
                }),
                Duration::from_secs(10)
            )
            .is_ok());
        done_rx.recv().unwrap();
        releaser.join().unwrap();
        // Held: the next waits out its grace, and once the pool has been
        // full that long, the one after it is handed back at once.
        let started = std::time::Instant::now();
        assert!(pool
            .run_within(Box::new(|| {}), Duration::from_millis(100))
            .is_err());
        assert!(started.elapsed() >= Duration::from_millis(100));
        let started = std::time::Instant::now();
        assert!(pool
            .run_within(Box::new(|| {}), Duration::from_millis(100))
            .is_err());
        assert!(started.elapsed() < Duration::from_millis(100));
        hold_tx.send(()).unwrap();
    }
}
