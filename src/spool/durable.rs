//! The durable-write steps every file of tinymta goes through, maildir style:
//! written in `tmp/`, fsync'd, renamed into place, the directory fsync'd.
//! A crash at any instant leaves the old state or the new one, never a torn file.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Makes a rename or a new file in `dir` survive a crash: the directory entry
/// itself must reach the disk, not only the file's data (fsync(2), "Notes").
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The fsync of one directory, shared by the threads that need it at the
/// same time (group commit): a rename is durable once an fsync of its
/// directory that *began after* the rename has ended, so one fsync covers
/// every thread that asked before it began. Ten sessions committing at once
/// cost about one directory fsync instead of ten.
#[derive(Debug)]
pub struct DirSync {
    dir: PathBuf,
    state: Mutex<DirSyncState>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct DirSyncState {
    /// Tickets handed out: one per call, taken after the caller's rename.
    requested: u64,
    /// Every ticket up to this one is covered by a finished fsync.
    covered: u64,
    /// An fsync is under way.
    running: bool,
    /// fsync(2) calls made, for tests.
    syncs: u64,
}

impl DirSync {
    pub fn new(dir: PathBuf) -> DirSync {
        DirSync {
            dir,
            state: Mutex::new(DirSyncState::default()),
            finished: Condvar::new(),
        }
    }

    /// Returns once everything renamed into the directory before this call
    /// is durable, or with the error of the fsync that was to cover it.
    pub fn sync(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if state.covered >= ticket {
                return Ok(());
            }
            if !state.running {
                // This fsync begins after every ticket handed out so far.
                let covers = state.requested;
                state.running = true;
                state.syncs += 1;
                drop(state);
                let result = fsync_dir(&self.dir);
                let mut state = self.lock();
                state.running = false;
                if result.is_ok() {
                    state.covered = state.covered.max(covers);
                }
                // On an error the waiters it was to cover try again themselves.
                self.finished.notify_all();
                return result;
            }
            state = self
                .finished
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, DirSyncState> {
        // Nothing panics while the lock is held; a poisoned state is whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

/// Creates `dir` and its parents, and makes each new entry durable.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another thread made it first: fine.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fsync_dir(parent),
        None => fsync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn dir_sync_is_shared_by_concurrent_callers() {
        let dir = tempfile::tempdir().unwrap();
        let sync = Arc::new(DirSync::new(dir.path().to_path_buf()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let sync = Arc::clone(&sync);
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for n in 0..50 {
                        fs::write(dir.join(format!("{t}.{n}")), b"x").unwrap();
                        sync.sync().unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let syncs = sync.syncs();
        assert!((1..=400).contains(&syncs), "{syncs} fsyncs for 400 calls");
        // A lone caller always gets an fsync of its own.
        sync.sync().unwrap();
        assert_eq!(sync.syncs(), syncs + 1);
    }

    #[test]
    fn dir_sync_reports_the_error_to_every_caller() {
        let dir = tempfile::tempdir().unwrap();
        let sync = DirSync::new(dir.path().join("gone"));
        assert_eq!(sync.sync().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(sync.sync().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(sync.syncs(), 2);
    }
}
