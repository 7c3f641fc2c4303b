//! The spool: a flat-file queue under `spool_dir`.
//!
//! ```text
//! spool_dir/tmp/<id>.msg, <id>.env   being written; removed at start-up
//! spool_dir/new/<id>.msg             the message, as received, CRLF line ends
//! spool_dir/new/<id>.env             its envelope (see queue.rs); the commit point
//! spool_dir/corrupt/<id>.msg, .env    an entry whose envelope cannot be read,
//!                                     set aside for the operator (as Postfix's
//!                                     corrupt/ queue)
//! ```
//!
//! Accepting a message: both files are written in `tmp/` and fsync'd, the
//! message is renamed into `new/`, then the envelope, then `new/` is fsync'd.
//! Only then does the client get its 250. A queue entry exists when its
//! envelope does; a `.msg` or `.env` without its twin was never acknowledged
//! and is removed at start-up.

pub mod maildir;
pub mod queue;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use maildir::{create_dir_durably, fsync_dir, random_u64, DirSync};
use queue::{EnvelopeError, QueueEnvelope};

/// How much message data is gathered before a write(2) to the spool file.
const WRITE_BUFFER: usize = 64 * 1024;

/// What went wrong in the spool.
#[derive(Debug)]
pub enum SpoolError {
    Io { path: PathBuf, error: io::Error },
    BadEnvelope { path: PathBuf, error: EnvelopeError },
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { path, error } => write!(f, "{}: {}", path.display(), error),
            SpoolError::BadEnvelope { path, error } => {
                write!(f, "{}: bad envelope: {}", path.display(), error)
            }
        }
    }
}

impl std::error::Error for SpoolError {}

impl SpoolError {
    /// The envelope file is there but unreadable as one (not UTF-8, or not
    /// the format): retrying will not help.
    pub fn is_corrupt_envelope(&self) -> bool {
        match self {
            SpoolError::BadEnvelope { .. } => true,
            SpoolError::Io { error, .. } => error.kind() == io::ErrorKind::InvalidData,
        }
    }

    /// The disk (or the user's quota) is full: a condition that passes.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, SpoolError::Io { error, .. }
            if matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
    }
}

/// Adds the path to an I/O error.
fn at(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |error| SpoolError::Io {
        path: path.to_path_buf(),
        error,
    }
}

#[derive(Debug)]
pub struct Spool {
    tmp: PathBuf,
    new: PathBuf,
    /// fsyncs of `new/`, shared by sessions that commit at the same time.
    new_sync: DirSync,
}

impl Spool {
    /// Opens the spool, creating its directories.
    pub fn open(spool_dir: &Path) -> Result<Spool, SpoolError> {
        let spool = Spool {
            tmp: spool_dir.join("tmp"),
            new: spool_dir.join("new"),
            new_sync: DirSync::new(spool_dir.join("new")),
        };
        create_dir_durably(&spool.tmp).map_err(at(&spool.tmp))?;
        create_dir_durably(&spool.new).map_err(at(&spool.new))?;
        Ok(spool)
    }

    /// Removes files of messages that were never acknowledged: anything in
    /// `tmp/`, and a `.msg` or `.env` in `new/` without its twin. A file some
    /// live writer holds locked (another process queueing mail) is left alone:
    /// a writer locks its `tmp/<id>.msg`, which stands for all of `<id>`'s files.
    /// Returns how many files were removed.
    pub fn recover(&self) -> Result<usize, SpoolError> {
        let mut count = 0;
        for entry in fs::read_dir(&self.tmp).map_err(at(&self.tmp))? {
            let path = entry.map_err(at(&self.tmp))?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let id = name.split('.').next().unwrap_or_default();
            let lock = self.tmp.join(format!("{id}.msg"));
            if is_unlocked(&lock) && fs::remove_file(&path).is_ok() {
                log::warn!("removed {}, left by an interrupted write", path.display());
                count += 1;
            }
        }
        let mut removed = false;
        for entry in fs::read_dir(&self.new).map_err(at(&self.new))? {
            let path = entry.map_err(at(&self.new))?.path();
            let twin = match path.extension().and_then(|e| e.to_str()) {
                Some("msg") => path.with_extension("env"),
                Some("env") => path.with_extension("msg"),
                _ => continue,
            };
            if !twin.exists() && is_unlocked(&path) && fs::remove_file(&path).is_ok() {
                log::warn!("removed {}, never acknowledged", path.display());
                removed = true;
                count += 1;
            }
        }
        if removed {
            fsync_dir(&self.new).map_err(at(&self.new))?;
        }
        Ok(count)
    }

    /// Starts a new message in `tmp/`.
    pub fn begin(&self) -> Result<IncomingMessage<'_>, SpoolError> {
        loop {
            let id = new_queue_id();
            if self.message_path(&id).exists() {
                continue;
            }
            let tmp_msg = self.tmp.join(format!("{id}.msg"));
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp_msg)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(at(&tmp_msg)(e)),
            };
            // Held until the commit is done, so that recovery by another
            // process never takes this file for a leftover.
            let _ = file.try_lock();
            return Ok(IncomingMessage {
                spool: self,
                tmp_env: self.tmp.join(format!("{id}.env")),
                id,
                tmp_msg,
                writer: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
                size: 0,
            });
        }
    }

    /// When `new/` last changed: a new entry renamed in, or one removed.
    pub fn last_change(&self) -> Option<std::time::SystemTime> {
        fs::metadata(&self.new).and_then(|m| m.modified()).ok()
    }

    /// The ids of all queue entries, oldest name first.
    pub fn list(&self) -> Result<Vec<String>, SpoolError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.new).map_err(at(&self.new))? {
            let name = entry.map_err(at(&self.new))?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".env")) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub fn read_envelope(&self, id: &str) -> Result<QueueEnvelope, SpoolError> {
        let path = self.envelope_path(id);
        let text = fs::read_to_string(&path).map_err(at(&path))?;
        QueueEnvelope::parse(&text).map_err(|error| SpoolError::BadEnvelope { path, error })
    }

    pub fn open_message(&self, id: &str) -> Result<File, SpoolError> {
        let path = self.message_path(id);
        File::open(&path).map_err(at(&path))
    }

    /// Replaces an entry's envelope atomically (recipient states changed).
    pub fn update_envelope(&self, envelope: &QueueEnvelope) -> Result<(), SpoolError> {
        let tmp = self
            .tmp
            .join(format!("{}.env.{:016x}", envelope.id, random_u64()));
        write_synced(&tmp, envelope.to_text().as_bytes())?;
        let path = self.envelope_path(&envelope.id);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(at(&path)(e));
        }
        self.new_sync.sync().map_err(at(&self.new))
    }

    /// Removes a finished entry: the envelope first, as it is the commit point.
    ///
    /// The directory is not fsync'd, as Postfix's queue manager does not
    /// fsync its removals either: a removal lost to a power cut only means
    /// the entry is delivered again. Local deliveries are idempotent (the
    /// Maildir name comes from the queue id), and a second remote copy is
    /// SMTP's known duplicate window (RFC 1047); a lone `.msg` or `.env`
    /// left over is removed at start-up.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        let env = self.envelope_path(id);
        fs::remove_file(&env).map_err(at(&env))?;
        let msg = self.message_path(id);
        fs::remove_file(&msg).map_err(at(&msg))
    }

    /// Moves an entry whose envelope cannot be read out of the queue into
    /// `corrupt/`, where it is no longer tried (or logged at every scan) but
    /// kept for the operator. Returns where it went.
    pub fn set_aside(&self, id: &str) -> Result<PathBuf, SpoolError> {
        let corrupt = self.new.with_file_name("corrupt");
        create_dir_durably(&corrupt).map_err(at(&corrupt))?;
        for path in [self.message_path(id), self.envelope_path(id)] {
            let target = corrupt.join(path.file_name().unwrap_or_default());
            match fs::rename(&path, &target) {
                Ok(()) => {}
                // A lone envelope: there is no message to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(&path)(e)),
            }
        }
        fsync_dir(&corrupt).map_err(at(&corrupt))?;
        self.new_sync.sync().map_err(at(&self.new))?;
        Ok(corrupt)
    }

    fn envelope_path(&self, id: &str) -> PathBuf {
        self.new.join(format!("{id}.env"))
    }

    fn message_path(&self, id: &str) -> PathBuf {
        self.new.join(format!("{id}.msg"))
    }
}

/// A message being received. Dropped without [`IncomingMessage::commit`], its
/// files are removed: nothing half-written ever enters the queue.
pub struct IncomingMessage<'a> {
    spool: &'a Spool,
    pub id: String,
    tmp_msg: PathBuf,
    tmp_env: PathBuf,
    writer: Option<BufWriter<File>>,
    size: u64,
}

impl IncomingMessage<'_> {
    pub fn write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        let writer = self.writer.as_mut().expect("written after commit");
        writer.write_all(data).map_err(at(&self.tmp_msg))?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// Octets written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the message a durable queue entry. When this returns `Ok`, and
    /// only then, the message may be acknowledged.
    pub fn commit(mut self, envelope: &QueueEnvelope) -> Result<(), SpoolError> {
        let writer = self.writer.take().expect("committed twice");
        let file = writer
            .into_inner()
            .map_err(|e| at(&self.tmp_msg)(e.into_error()))?;
        file.sync_all().map_err(at(&self.tmp_msg))?;
        write_synced(&self.tmp_env, envelope.to_text().as_bytes())?;
        let spool = self.spool;
        let msg = spool.message_path(&self.id);
        fs::rename(&self.tmp_msg, &msg).map_err(at(&msg))?;
        let env = spool.envelope_path(&self.id);
        if let Err(e) = fs::rename(&self.tmp_env, &env) {
            let _ = fs::remove_file(&msg);
            return Err(at(&env)(e));
        }
        if let Err(e) = spool.new_sync.sync() {
            // Not acknowledged, so it must not be delivered either.
            let _ = fs::remove_file(&env);
            let _ = fs::remove_file(&msg);
            return Err(at(&spool.new)(e));
        }
        // The lock on the message file goes when `file` is closed here.
        drop(file);
        self.tmp_msg.clear();
        Ok(())
    }
}

impl Drop for IncomingMessage<'_> {
    fn drop(&mut self) {
        if !self.tmp_msg.as_os_str().is_empty() {
            self.writer = None;
            let _ = fs::remove_file(&self.tmp_msg);
            let _ = fs::remove_file(&self.tmp_env);
        }
    }
}

/// Writes a whole file and fsyncs it; on failure (a full disk) nothing of
/// it is left behind.
fn write_synced(path: &Path, data: &[u8]) -> Result<(), SpoolError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(at(path))?;
    let written = file.write_all(data).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(at(path)(e));
    }
    Ok(())
}

/// Whether no live process holds `path` locked (a missing file is not locked).
fn is_unlocked(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => file.try_lock().is_ok(),
        Err(_) => true,
    }
}

/// A queue id: the arrival second in hex, so ids sort by age, then 40 random
/// bits, unique across threads, processes and reboots with a reset clock.
fn new_queue_id() -> String {
    format!(
        "{:08X}{:010X}",
        crate::time::unix_now() as u32,
        random_u64() & 0xff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::queue::Recipient;
    use super::*;
    use crate::smtp::address::parse_mailbox;

    fn envelope(id: &str) -> QueueEnvelope {
        QueueEnvelope {
            id: id.to_string(),
            arrival: 1,
            client: "127.0.0.1".into(),
            helo: "h".into(),
            sender: None,
            body: String::new(),
            size: 5,
            recipients: vec![Recipient::new(parse_mailbox("a@b.org").unwrap())],
        }
    }

    #[test]
    fn commit_makes_an_entry_and_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut incoming = spool.begin().unwrap();
        incoming.write(b"hello").unwrap();
        let id = incoming.id.clone();
        incoming.commit(&envelope(&id)).unwrap();
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        assert_eq!(spool.read_envelope(&id).unwrap(), envelope(&id));
        let mut abandoned = spool.begin().unwrap();
        abandoned.write(b"partial").unwrap();
        drop(abandoned);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        spool.remove(&id).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }

    #[test]
    fn a_corrupt_entry_is_set_aside_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        fs::write(dir.path().join("new/BAD.msg"), "the message").unwrap();
        fs::write(dir.path().join("new/BAD.env"), "not an envelope").unwrap();
        fs::write(dir.path().join("new/BIN.env"), b"\xff\xfe").unwrap();
        let bad = spool.read_envelope("BAD").unwrap_err();
        assert!(bad.is_corrupt_envelope(), "{bad}");
        let binary = spool.read_envelope("BIN").unwrap_err();
        assert!(binary.is_corrupt_envelope(), "{binary}");
        assert!(!spool
            .read_envelope("GONE")
            .unwrap_err()
            .is_corrupt_envelope());
        let corrupt = spool.set_aside("BAD").unwrap();
        spool.set_aside("BIN").unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(fs::read(corrupt.join("BAD.msg")).unwrap(), b"the message");
        assert_eq!(
            fs::read(corrupt.join("BAD.env")).unwrap(),
            b"not an envelope"
        );
        assert!(corrupt.join("BIN.env").exists());
    }

    #[test]
    fn recovery_removes_unacknowledged_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut incoming = spool.begin().unwrap();
        incoming.write(b"kept").unwrap();
        let id = incoming.id.clone();
        incoming.commit(&envelope(&id)).unwrap();
        fs::write(dir.path().join("tmp/X.msg"), "torn").unwrap();
        fs::write(dir.path().join("new/ORPHAN.msg"), "no envelope").unwrap();
        fs::write(dir.path().join("new/LONELY.env"), "no message").unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut writing = spool.begin().unwrap();
        writing.write(b"in progress elsewhere").unwrap();
        assert_eq!(spool.recover().unwrap(), 3);
        assert_eq!(spool.list().unwrap(), vec![id]);
        writing.write(b", still there").unwrap();
        let writing_id = writing.id.clone();
        writing.commit(&envelope(&writing_id)).unwrap();
        assert!(!dir.path().join("tmp/X.msg").exists());
        assert!(!dir.path().join("new/ORPHAN.msg").exists());
        assert!(!dir.path().join("new/LONELY.env").exists());
    }

    #[test]
    fn queue_ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_queue_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
