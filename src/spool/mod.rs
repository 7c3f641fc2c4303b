//! The spool: a flat-file queue under `spool_dir`.
//!
//! ```text
//! spool_dir/tmp/<id>.msg        being written; removed at start-up
//! spool_dir/tmp/<id>.env.<n>    an envelope update being written
//! spool_dir/new/<id>.msg        a queue entry (below); its rename into new/
//!                               is the commit point
//! spool_dir/new/<id>.env        the envelope as delivery has changed it; it
//!                               supersedes the one inside <id>.msg
//! spool_dir/corrupt/<id>.*      an entry whose envelope cannot be read, set
//!                               aside for the operator (as Postfix's
//!                               corrupt/ queue)
//! ```
//!
//! A queue entry is one file: the message as received (CRLF line ends, the
//! envelope's `size` octets), then its envelope as first queued (queue.rs),
//! then one line that says where that envelope starts:
//!
//! ```text
//! Subject: hi\r\n\r\nhello\r\n
//! tinymta-envelope: 1\n ... size: 20\n recipient: queued ...\n
//! tinymta-envelope-at: 00000000000000000020\n
//! ```
//!
//! Accepting a message costs one file written in `tmp/` and fsync'd, its
//! rename into `new/`, and an fsync of `new/` shared with the sessions that
//! commit at the same time (`DirSync`); only then does the client get its
//! 250. The envelope cannot come first, as `sendmail -t` learns the
//! recipients from the message itself. An envelope in a file of its own
//! would cost a second file, fsync and rename for every message, and leave
//! an instant where one file is there without the other.

pub mod durable;
pub mod queue;
pub mod waker;

use std::cell::Cell;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::line_error::LineError;
use crate::log::Escaped;
use crate::random::random_u64;
use crate::smtp::address::Mailbox;
use crate::smtp::command::Body;
use crate::sys::Dir;
use durable::{create_dir_durably, fsync_dir, DirSync};
use queue::{QueueEnvelope, Recipient};

/// The drop box of `sendmail` run set-group-id, below `spool_dir`.
pub const MAILDROP: &str = "maildrop";

/// How much message data is gathered before a write(2) to the spool file.
const WRITE_BUFFER: usize = 64 * 1024;

thread_local! {
    /// The write buffer of this thread's last message, kept for its next:
    /// with musl's malloc a fresh 64 KiB buffer for every message costs an
    /// mmap, a munmap and 16 page faults. (Pool threads that go idle end,
    /// and their buffer with them.)
    static SPARE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The last line of a queue file: where its envelope starts, in octets,
/// as a fixed number of digits so that the line has a fixed length.
const TRAILER_TAG: &str = "tinymta-envelope-at: ";
const TRAILER_DIGITS: usize = 20;
const TRAILER_LEN: usize = TRAILER_TAG.len() + TRAILER_DIGITS + 1;

/// An envelope longer than this is taken for damage, not read into memory.
/// (100 recipients of the longest address take about 30 KiB.)
const MAX_ENVELOPE: u64 = 16 << 20;

/// What went wrong in the spool.
#[derive(Debug)]
pub enum SpoolError {
    Io { path: PathBuf, error: io::Error },
    BadEnvelope { path: PathBuf, error: LineError },
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Errors of sys::Dir name their path themselves.
            SpoolError::Io { path, error } if path.as_os_str().is_empty() => error.fmt(f),
            SpoolError::Io { path, error } => write!(f, "{}: {}", path.display(), error),
            SpoolError::BadEnvelope { path, error } => {
                write!(f, "{}: bad envelope: {}", path.display(), error)
            }
        }
    }
}

impl std::error::Error for SpoolError {}

impl SpoolError {
    /// The envelope is there but unreadable as one (not UTF-8, or not the
    /// format): retrying will not help.
    pub fn is_corrupt_envelope(&self) -> bool {
        match self {
            SpoolError::BadEnvelope { .. } => true,
            SpoolError::Io { error, .. } => error.kind() == io::ErrorKind::InvalidData,
        }
    }

    /// This process may not reach the spool (an ordinary user without the
    /// set-group-id install).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, SpoolError::Io { error, .. } if error.kind() == io::ErrorKind::PermissionDenied)
    }

    /// A file of that name exists already.
    pub fn is_already_there(&self) -> bool {
        matches!(self, SpoolError::Io { error, .. } if error.kind() == io::ErrorKind::AlreadyExists)
    }

    /// The entry is not there (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SpoolError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound)
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

fn bad_envelope(path: &Path, message: &str) -> SpoolError {
    SpoolError::BadEnvelope {
        path: path.to_path_buf(),
        error: LineError::new(0, message),
    }
}

/// Which part of the spool new messages are written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Staging {
    /// The queue proper: `tmp/<id>.msg`, committed as `new/<id>.msg`. Its
    /// files are the spool owner's alone (0600).
    Queue,
    /// The drop box of users who may only submit: `maildrop/<id>.tmp`,
    /// committed as `maildrop/<id>.msg`, then moved into the queue by the
    /// daemon ([`Spool::pick_up`]). As Postfix's maildrop: the submitting
    /// group may add files there (mode 3730) but neither list, read, rename
    /// nor remove one; the daemon reads them as "other" (0604).
    Maildrop,
}

/// The mode of files in the maildrop: the submitter's own (it cannot reach
/// them once its process ends: the directory is closed to others), not the
/// submitting group's, readable by the daemon, which is neither.
const MAILDROP_FILE_MODE: u32 = 0o604;

#[derive(Debug)]
pub struct Spool {
    tmp: PathBuf,
    new: PathBuf,
    maildrop: PathBuf,
    staging: Staging,
    /// `tmp` and `new` held open: files are made and renamed relative to
    /// them (openat, renameat), and neither is ever a symlink.
    tmp_dir: Dir,
    new_dir: Dir,
    /// fsyncs of the directory entries are committed into (`new/`, or the
    /// maildrop), shared by sessions that commit at the same time.
    new_sync: DirSync,
    /// Whom queue files are given to when root writes them: the owner of
    /// `new/`, that is the daemon's user (`None` when that is this process).
    give_to: Option<(u32, u32)>,
}

impl Spool {
    /// Opens the spool as the daemon does, creating its directories.
    pub fn open(spool_dir: &Path) -> Result<Spool, SpoolError> {
        for dir in ["tmp", "new", MAILDROP] {
            let path = spool_dir.join(dir);
            create_dir_durably(&path).map_err(at(&path))?;
        }
        Spool::open_existing(spool_dir)
    }

    /// Opens a spool the daemon has made, creating nothing (sendmail,
    /// mailq): a missing directory is an error, never made by the caller.
    pub fn open_existing(spool_dir: &Path) -> Result<Spool, SpoolError> {
        let top = Dir::open(spool_dir).map_err(held)?;
        let new_dir = top.open_sub("new").map_err(held)?;
        let owner = new_dir.metadata().map_err(held)?;
        let tmp_dir = top.open_sub("tmp").map_err(held)?;
        let give_to =
            (crate::sys::effective_uid() != owner.uid()).then_some((owner.uid(), owner.gid()));
        let (tmp, new) = (spool_dir.join("tmp"), spool_dir.join("new"));
        Ok(Spool {
            tmp,
            tmp_dir,
            new_dir,
            new_sync: DirSync::new(new.clone()),
            new,
            maildrop: spool_dir.join(MAILDROP),
            staging: Staging::Queue,
            give_to,
        })
    }

    /// Where this process may queue a message: the queue proper for root
    /// and for the spool's owner (root's files are given to the owner), the
    /// maildrop for everyone else (a set-group-id `sendmail`).
    pub fn for_submission(spool_dir: &Path) -> Result<Spool, SpoolError> {
        let queue = Spool::open_existing(spool_dir)?;
        if crate::sys::is_root() || queue.give_to.is_none() {
            return Ok(queue);
        }
        let maildrop = spool_dir.join(MAILDROP);
        let drop_dir = || Dir::open(spool_dir).and_then(|top| top.open_sub(MAILDROP));
        Ok(Spool {
            tmp: maildrop.clone(),
            tmp_dir: drop_dir().map_err(held)?,
            new_dir: drop_dir().map_err(held)?,
            new: maildrop.clone(),
            new_sync: DirSync::new(maildrop.clone()),
            maildrop,
            staging: Staging::Maildrop,
            give_to: None,
        })
    }

    /// Removes what no queue entry needs: files of messages that were never
    /// acknowledged (anything in `tmp/`), and an `.env` in `new/` whose
    /// `.msg` is gone (its entry was being removed). A file some live writer
    /// holds locked (another process queueing mail) is left alone: a writer
    /// locks its `tmp/<id>.msg`. Returns how many files were removed.
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
        for entry in fs::read_dir(&self.new).map_err(at(&self.new))? {
            let path = entry.map_err(at(&self.new))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("env") {
                continue;
            }
            if !path.with_extension("msg").exists() && fs::remove_file(&path).is_ok() {
                log::warn!("removed {}, its message was gone", path.display());
                count += 1;
            }
        }
        Ok(count)
    }

    /// Starts a new message in `tmp/` (or the maildrop).
    pub fn begin(&self) -> Result<IncomingMessage<'_>, SpoolError> {
        loop {
            match self.begin_with_id(new_queue_id()) {
                Err(e) if e.is_already_there() => continue,
                other => return other,
            }
        }
    }

    /// Starts a new message with a given id; an error that
    /// [`SpoolError::is_already_there`] when the id is taken.
    fn begin_with_id(&self, id: String) -> Result<IncomingMessage<'_>, SpoolError> {
        let committed = self.message_path(&id);
        if committed.exists() {
            let error = io::Error::from(io::ErrorKind::AlreadyExists);
            return Err(at(&committed)(error));
        }
        let tmp_name = match self.staging {
            Staging::Queue => format!("{id}.msg"),
            Staging::Maildrop => format!("{id}.tmp"),
        };
        let tmp_msg = self.tmp.join(&tmp_name);
        let file = self.tmp_dir.create_file(&tmp_name, 0o600).map_err(held)?;
        let mode = match self.staging {
            Staging::Queue => 0o600,
            Staging::Maildrop => MAILDROP_FILE_MODE,
        };
        // Set outright: the caller's umask (077 from s-nail) must not decide
        // whether the daemon can read it.
        let given = file
            .set_permissions(fs::Permissions::from_mode(mode))
            .and_then(|()| match self.give_to {
                Some((uid, gid)) if self.staging == Staging::Queue => {
                    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                }
                _ => Ok(()),
            });
        if let Err(e) = given {
            let _ = fs::remove_file(&tmp_msg);
            return Err(at(&tmp_msg)(e));
        }
        // Held until the commit is done, so that recovery by another
        // process never takes this file for a leftover.
        let _ = file.try_lock();
        Ok(IncomingMessage {
            spool: self,
            id,
            tmp_msg,
            tmp_name,
            file: Some(file),
            buffer: SPARE_BUFFER.take(),
            size: 0,
        })
    }

    /// Queues a message held in memory (a bounce); returns its id.
    pub fn put(&self, entry: &NewEntry, text: &[u8]) -> Result<String, SpoolError> {
        let mut message = self.begin()?;
        message.write(text)?;
        message.commit(entry)
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
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".msg")) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// An entry's envelope as it is now: `<id>.env` where delivery has
    /// written one, else the one the entry was queued with.
    pub fn read_envelope(&self, id: &str) -> Result<QueueEnvelope, SpoolError> {
        let path = self.envelope_path(id);
        let (envelope, path) = match fs::read(&path) {
            Ok(text) => (parse_envelope(&path, &text)?, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let path = self.message_path(id);
                (first_envelope(&path)?, path)
            }
            Err(e) => return Err(at(&path)(e)),
        };
        // Its id names the files the runner writes: it must be this entry's.
        if envelope.id != id {
            return Err(bad_envelope(
                &path,
                &format!("the id {} is not this entry's", envelope.id),
            ));
        }
        Ok(envelope)
    }

    /// The message of an entry: the first `size` octets of its file, `size`
    /// being its envelope's.
    pub fn open_message(&self, id: &str, size: u64) -> Result<io::Take<File>, SpoolError> {
        let path = self.message_path(id);
        let file = File::open(&path).map_err(at(&path))?;
        let len = file.metadata().map_err(at(&path))?.len();
        if len < size {
            let error = io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} octets, shorter than the message's {size}"),
            );
            return Err(at(&path)(error));
        }
        Ok(file.take(size))
    }

    /// Replaces an entry's envelope atomically (recipient states changed).
    pub fn update_envelope(&self, envelope: &QueueEnvelope) -> Result<(), SpoolError> {
        let tmp = format!("{}.env.{:016x}", envelope.id, random_u64());
        write_synced(&self.tmp_dir, &tmp, envelope.to_text().as_bytes())?;
        let name = format!("{}.env", envelope.id);
        if let Err(e) = self.tmp_dir.rename(&tmp, &self.new_dir, &name) {
            let _ = self.tmp_dir.remove_file(&tmp);
            return Err(held(e));
        }
        self.new_sync.sync().map_err(at(&self.new))
    }

    /// Removes a finished entry: its `.msg` first, as that is the entry.
    ///
    /// The directory is not fsync'd, as Postfix's queue manager does not
    /// fsync its removals either: a removal lost to a power cut only means
    /// the entry is delivered again. Local deliveries are idempotent (the
    /// Maildir name comes from the queue id), and a second remote copy is
    /// SMTP's known duplicate window (RFC 1047). An `.env` that outlives
    /// its `.msg` is removed at start-up.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        let msg = self.message_path(id);
        fs::remove_file(&msg).map_err(at(&msg))?;
        let env = self.envelope_path(id);
        match fs::remove_file(&env) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                log::warn!("{}: {e}; it goes at the next start", env.display());
            }
            _ => {}
        }
        Ok(())
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
                // An entry that was never updated has no `.env`.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(&path)(e)),
            }
        }
        fsync_dir(&corrupt).map_err(at(&corrupt))?;
        self.new_sync.sync().map_err(at(&self.new))?;
        Ok(corrupt)
    }

    /// A small file of the daemon's own state beside the queue,
    /// `spool_dir/NAME` (the alarms' state); `None` when there is none.
    pub fn read_state(&self, name: &str) -> Result<Option<String>, SpoolError> {
        let path = self.new.with_file_name(name);
        match fs::read(&path) {
            Ok(text) => Ok(Some(String::from_utf8_lossy(&text).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&path)(e)),
        }
    }

    /// Replaces `spool_dir/NAME` as envelopes are replaced: written in
    /// `tmp/` and fsync'd, renamed into place, the directory fsync'd.
    pub fn write_state(&self, name: &str, text: &str) -> Result<(), SpoolError> {
        let tmp = format!("{name}.{:016x}", random_u64());
        write_synced(&self.tmp_dir, &tmp, text.as_bytes())?;
        let path = self.new.with_file_name(name);
        if let Err(e) = fs::rename(self.tmp.join(&tmp), &path) {
            let _ = self.tmp_dir.remove_file(&tmp);
            return Err(at(&path)(e));
        }
        let top = self.new.parent().unwrap_or(Path::new("."));
        fsync_dir(top).map_err(at(top))
    }

    fn envelope_path(&self, id: &str) -> PathBuf {
        self.new.join(format!("{id}.env"))
    }

    /// When the maildrop last changed: a submission committed there.
    pub fn maildrop_change(&self) -> Option<std::time::SystemTime> {
        fs::metadata(&self.maildrop).and_then(|m| m.modified()).ok()
    }

    /// Moves what was submitted to the maildrop into the queue, each message
    /// under the id it was submitted with, through [`IncomingMessage::commit`]
    /// like any other; returns their ids. A message is removed from the
    /// maildrop only once queued, and one queued before a crash took its
    /// removal away is not queued twice. What is not a queue file is set
    /// aside in `corrupt/`; what a submitter left half-written (an unlocked
    /// `.tmp`) is removed.
    pub fn pick_up(&self) -> Result<Vec<String>, SpoolError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.maildrop) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(at(&self.maildrop)(e)),
        };
        for entry in entries {
            let path = entry.map_err(at(&self.maildrop))?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if let Some(id) = name.strip_suffix(".msg") {
                match self.pick_up_one(id, &path) {
                    Ok(()) => ids.push(id.to_string()),
                    Err(e) if e.is_corrupt_envelope() => match self.set_aside_file(&path) {
                        Ok(dir) => log::error!("{e}; moved to {}", dir.display()),
                        Err(moving) => log::error!("{e}; cannot set it aside: {moving}"),
                    },
                    Err(e) if e.is_already_there() => {}
                    Err(e) => log::error!("maildrop: {e}"),
                }
            } else if name.ends_with(".tmp") && is_unlocked(&path) && fs::remove_file(&path).is_ok()
            {
                log::warn!(
                    "removed {}, left by an interrupted submission",
                    path.display()
                );
            }
        }
        Ok(ids)
    }

    fn pick_up_one(&self, id: &str, path: &Path) -> Result<(), SpoolError> {
        if self.message_path(id).exists() {
            // Queued before a crash took the maildrop copy's removal away.
            fs::remove_file(path).map_err(at(path))?;
            return Err(at(path)(io::ErrorKind::AlreadyExists.into()));
        }
        // Nothing a submitter put there is followed, or read if it is not a
        // plain file of its own.
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(at(path))?;
        let meta = file.metadata().map_err(at(path))?;
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(bad_envelope(path, "not a plain file with one name"));
        }
        let envelope = first_envelope_in(&mut file, path)?;
        if envelope.id != id {
            return Err(bad_envelope(path, "its id is not its name"));
        }
        let entry = NewEntry {
            arrival: envelope.arrival,
            client: "local".to_string(),
            helo: envelope.helo,
            sender: envelope.sender,
            body: envelope.body,
            recipients: envelope.recipients.into_iter().map(|r| r.address).collect(),
        };
        file.seek(SeekFrom::Start(0)).map_err(at(path))?;
        let mut incoming = self.begin_with_id(id.to_string())?;
        let mut message = file.take(envelope.size);
        let mut chunk = vec![0u8; WRITE_BUFFER];
        loop {
            let n = message.read(&mut chunk).map_err(at(path))?;
            if n == 0 {
                break;
            }
            incoming.write(&chunk[..n])?;
        }
        incoming.commit(&entry)?;
        fs::remove_file(path).map_err(at(path))?;
        log::info!(
            "{id}: picked up from the maildrop, submitted by uid {}",
            meta.uid()
        );
        Ok(())
    }

    /// Moves a maildrop file that is no queue file into `corrupt/`.
    fn set_aside_file(&self, path: &Path) -> Result<PathBuf, SpoolError> {
        let corrupt = self.new.with_file_name("corrupt");
        create_dir_durably(&corrupt).map_err(at(&corrupt))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let target = corrupt.join(format!("maildrop.{name}"));
        fs::rename(path, &target).map_err(at(path))?;
        fsync_dir(&corrupt).map_err(at(&corrupt))?;
        Ok(corrupt)
    }

    fn message_path(&self, id: &str) -> PathBuf {
        self.new.join(format!("{id}.msg"))
    }
}

/// The envelope a queue file was committed with, found through its last
/// line.
fn first_envelope(path: &Path) -> Result<QueueEnvelope, SpoolError> {
    let mut file = File::open(path).map_err(at(path))?;
    first_envelope_in(&mut file, path)
}

/// The envelope of the queue file open as `file` (named `path` in errors).
fn first_envelope_in(file: &mut File, path: &Path) -> Result<QueueEnvelope, SpoolError> {
    let len = file.metadata().map_err(at(path))?.len();
    let end = len
        .checked_sub(TRAILER_LEN as u64)
        .ok_or_else(|| bad_envelope(path, "no envelope at the end of the file"))?;
    let mut trailer = [0u8; TRAILER_LEN];
    file.seek(SeekFrom::Start(end))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(at(path))?;
    let start = envelope_start(&trailer)
        .filter(|start| *start <= end && end - start <= MAX_ENVELOPE)
        .ok_or_else(|| bad_envelope(path, "no envelope at the end of the file"))?;
    let mut text = vec![0; (end - start) as usize];
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut text))
        .map_err(at(path))?;
    let envelope = parse_envelope(path, &text)?;
    if envelope.size != start {
        return Err(bad_envelope(
            path,
            "size does not say where the envelope is",
        ));
    }
    Ok(envelope)
}

fn parse_envelope(path: &Path, text: &[u8]) -> Result<QueueEnvelope, SpoolError> {
    let text = std::str::from_utf8(text).map_err(|_| bad_envelope(path, "not UTF-8"))?;
    QueueEnvelope::parse(text).map_err(|error| SpoolError::BadEnvelope {
        path: path.to_path_buf(),
        error,
    })
}

/// The last line of a queue file, for an envelope starting at `start`.
fn trailer(start: u64) -> String {
    format!("{TRAILER_TAG}{start:0width$}\n", width = TRAILER_DIGITS)
}

/// Where the envelope starts, from a queue file's last line.
fn envelope_start(line: &[u8; TRAILER_LEN]) -> Option<u64> {
    let digits = line
        .strip_prefix(TRAILER_TAG.as_bytes())?
        .strip_suffix(b"\n")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A message being received. Dropped without [`IncomingMessage::commit`], its
/// file is removed: nothing half-written ever enters the queue.
pub struct IncomingMessage<'a> {
    spool: &'a Spool,
    pub id: String,
    tmp_msg: PathBuf,
    /// Its name in the spool's `tmp_dir`.
    tmp_name: String,
    /// `None` once committed.
    file: Option<File>,
    /// Data not yet written to `file`.
    buffer: Vec<u8>,
    size: u64,
}

impl IncomingMessage<'_> {
    pub fn write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        self.buffered_write(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn buffered_write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        if self.buffer.len() + data.len() > WRITE_BUFFER {
            self.flush()?;
        }
        if data.len() >= WRITE_BUFFER {
            let file = self.file.as_mut().expect("written after commit");
            file.write_all(data).map_err(at(&self.tmp_msg))
        } else {
            if self.buffer.capacity() < WRITE_BUFFER {
                self.buffer.reserve_exact(WRITE_BUFFER - self.buffer.len());
            }
            self.buffer.extend_from_slice(data);
            Ok(())
        }
    }

    fn flush(&mut self) -> Result<(), SpoolError> {
        let file = self.file.as_mut().expect("written after commit");
        let written = file.write_all(&self.buffer);
        self.buffer.clear();
        written.map_err(at(&self.tmp_msg))
    }

    /// Octets of message written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the message a durable queue entry for `entry`, and returns its
    /// id. When this returns `Ok`, and only then, the message may be
    /// acknowledged. This is the one way into the queue: the envelope of a
    /// new entry is built here and nowhere else.
    pub fn commit(mut self, entry: &NewEntry) -> Result<String, SpoolError> {
        let envelope = QueueEnvelope {
            id: self.id.clone(),
            arrival: entry.arrival,
            client: entry.client.clone(),
            helo: entry.helo.clone(),
            sender: entry.sender.clone(),
            body: entry.body,
            // The size tells readers where the message ends: only the
            // octets counted here can say it.
            size: self.size,
            recipients: entry
                .recipients
                .iter()
                .cloned()
                .map(Recipient::new)
                .collect(),
        };
        let mut envelope_text = envelope.to_text();
        envelope_text.push_str(&trailer(self.size));
        self.buffered_write(envelope_text.as_bytes())?;
        self.flush()?;
        let file = self.file.take().expect("committed twice");
        file.sync_all().map_err(at(&self.tmp_msg))?;
        let spool = self.spool;
        let msg = format!("{}.msg", self.id);
        spool
            .tmp_dir
            .rename(&self.tmp_name, &spool.new_dir, &msg)
            .map_err(held)?;
        let synced = match spool.new_sync.sync() {
            // A submitter may not read the maildrop, so it cannot fsync it.
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    && spool.staging == Staging::Maildrop =>
            {
                crate::sys::sync_file_system(&file)
            }
            other => other,
        };
        if let Err(e) = synced {
            // Not acknowledged, so it must not be delivered either.
            let _ = spool.new_dir.remove_file(&msg);
            return Err(at(&spool.new)(e));
        }
        // The lock on the file goes when `file` is closed here.
        drop(file);
        self.tmp_msg.clear();
        Ok(envelope.id)
    }
}

/// What a producer of mail says of a new queue entry; the spool names it
/// and counts its octets. The SMTP server, sendmail, bounces and test-send
/// all queue through [`IncomingMessage::commit`] (or [`Spool::put`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Unix seconds when the message was accepted.
    pub arrival: u64,
    /// The client's IP address, or `local` for mail submitted on the box.
    pub client: String,
    /// The client's EHLO name, or the submitting user's login.
    pub helo: String,
    /// `None` is the null reverse-path `<>`.
    pub sender: Option<Mailbox>,
    /// What the client declared (RFC 6152); `None` when it said nothing.
    pub body: Option<Body>,
    pub recipients: Vec<Mailbox>,
}

impl NewEntry {
    /// Mail made on this box (a bounce, a test message): `client` is
    /// `local`, `helo` our own name, and the body type follows the text.
    pub fn local(
        hostname: &str,
        sender: Option<Mailbox>,
        recipients: Vec<Mailbox>,
        text: &[u8],
    ) -> NewEntry {
        NewEntry {
            arrival: crate::time::unix_now(),
            client: "local".to_string(),
            helo: hostname.to_string(),
            sender,
            body: Some(if text.is_ascii() {
                Body::SevenBit
            } else {
                Body::EightBitMime
            }),
            recipients,
        }
    }

    /// The one log line of a message accepted into the queue, as Postfix's
    /// cleanup logs it; `detail` ends it (` message-id=<...>`, ` uid=0`),
    /// with what came from the client in it escaped ([`Escaped`]).
    pub fn log_accepted(&self, id: &str, size: u64, detail: &str) {
        let sender = self
            .sender
            .as_ref()
            .map(Mailbox::to_string)
            .unwrap_or_default();
        log::info!(
            "{id}: accepted from=<{}> client={} helo={} nrcpt={} size={size}{detail}",
            Escaped(&sender),
            self.client,
            Escaped(&self.helo),
            self.recipients.len(),
        );
    }
}

impl Drop for IncomingMessage<'_> {
    fn drop(&mut self) {
        if !self.tmp_msg.as_os_str().is_empty() {
            self.file = None;
            let _ = self.spool.tmp_dir.remove_file(&self.tmp_name);
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        SPARE_BUFFER.set(buffer);
    }
}

/// Writes a whole file and fsyncs it; on failure (a full disk) nothing of
/// it is left behind.
fn write_synced(dir: &Dir, name: &str, data: &[u8]) -> Result<(), SpoolError> {
    let mut file = dir.create_file(name, 0o600).map_err(held)?;
    let written = file.write_all(data).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = dir.remove_file(name);
        return Err(at(&dir.path().join(name))(e));
    }
    Ok(())
}

/// An error of a `sys::Dir` call, which names its path itself.
fn held(error: io::Error) -> SpoolError {
    SpoolError::Io {
        path: PathBuf::new(),
        error,
    }
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
    use super::queue::{Recipient, RecipientState};
    use super::*;
    use crate::smtp::address::parse_mailbox;

    fn entry() -> NewEntry {
        NewEntry {
            arrival: 1,
            client: "127.0.0.1".into(),
            helo: "h".into(),
            sender: None,
            body: None,
            recipients: vec![parse_mailbox("a@b.org").unwrap()],
        }
    }

    /// The envelope `entry()` is committed with, for a message of 5 octets.
    fn envelope(id: &str) -> QueueEnvelope {
        QueueEnvelope {
            id: id.to_string(),
            arrival: 1,
            client: "127.0.0.1".into(),
            helo: "h".into(),
            sender: None,
            body: None,
            size: 5,
            recipients: vec![Recipient::new(parse_mailbox("a@b.org").unwrap())],
        }
    }

    fn committed(spool: &Spool, data: &[u8]) -> String {
        spool.put(&entry(), data).unwrap()
    }

    fn message(spool: &Spool, id: &str) -> Vec<u8> {
        let size = spool.read_envelope(id).unwrap().size;
        let mut text = Vec::new();
        spool
            .open_message(id, size)
            .unwrap()
            .read_to_end(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn a_state_file_beside_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.read_state("alarms").unwrap(), None);
        spool.write_state("alarms", "one\n").unwrap();
        spool.write_state("alarms", "two\n").unwrap();
        assert_eq!(
            spool.read_state("alarms").unwrap().as_deref(),
            Some("two\n")
        );
        assert_eq!(fs::read(dir.path().join("alarms")).unwrap(), b"two\n");
        // Nothing of it is left in tmp/, nor taken for a queue entry.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(spool.list().unwrap().is_empty());
    }

    #[test]
    fn an_entry_is_one_file_until_its_envelope_changes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let id = committed(&spool, b"hello");
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        assert_eq!(spool.read_envelope(&id).unwrap(), envelope(&id));
        let file = fs::read(dir.path().join(format!("new/{id}.msg"))).unwrap();
        let expected = format!(
            "hello{}tinymta-envelope-at: 00000000000000000005\n",
            envelope(&id).to_text()
        );
        assert_eq!(String::from_utf8(file).unwrap(), expected);
        assert_eq!(message(&spool, &id), b"hello");

        let mut changed = envelope(&id);
        changed.recipients[0].state = RecipientState::Delivered;
        spool.update_envelope(&changed).unwrap();
        assert_eq!(spool.read_envelope(&id).unwrap(), changed);
        assert_eq!(message(&spool, &id), b"hello");
        assert_eq!(
            fs::read_to_string(dir.path().join(format!("new/{id}.env"))).unwrap(),
            changed.to_text()
        );

        let mut abandoned = spool.begin().unwrap();
        abandoned.write(b"partial").unwrap();
        drop(abandoned);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        spool.remove(&id).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }

    #[test]
    fn the_stored_size_is_the_octets_written() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        // `committed` says size 5 in the envelope it gives.
        let id = committed(&spool, b"longer than five");
        assert_eq!(spool.read_envelope(&id).unwrap().size, 16);
        assert_eq!(message(&spool, &id), b"longer than five");
        // A size the file cannot hold is an error, not a short message.
        let short = spool.open_message(&id, 10_000).unwrap_err();
        assert!(short.is_corrupt_envelope(), "{short}");
    }

    #[test]
    fn a_corrupt_entry_is_set_aside_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let new = dir.path().join("new");
        let good = envelope("X").to_text();
        let entries: [(&str, Vec<u8>); 5] = [
            ("NOTRAILER", b"the message".to_vec()),
            ("TINY", b"x".to_vec()),
            (
                "BEYOND",
                format!("hello{good}{}", trailer(999)).into_bytes(),
            ),
            // The trailer is right, the size in the envelope is not.
            ("SIZE", format!("hell{good}{}", trailer(4)).into_bytes()),
            (
                "BIN",
                [&b"hello\xff\xfe"[..], trailer(5).as_bytes()].concat(),
            ),
        ];
        for (id, bytes) in &entries {
            fs::write(new.join(format!("{id}.msg")), bytes).unwrap();
            let error = spool.read_envelope(id).unwrap_err();
            assert!(error.is_corrupt_envelope(), "{id}: {error}");
        }
        // An envelope of another entry.
        let other = committed(&spool, b"hello");
        fs::write(new.join(format!("{other}.env")), envelope("X").to_text()).unwrap();
        let error = spool.read_envelope(&other).unwrap_err();
        assert!(error.is_corrupt_envelope(), "{error}");
        spool.set_aside(&other).unwrap();
        // An updated envelope that is damaged.
        let id = committed(&spool, b"hello");
        fs::write(new.join(format!("{id}.env")), "not an envelope").unwrap();
        assert!(spool.read_envelope(&id).unwrap_err().is_corrupt_envelope());
        // Missing is not corrupt: it may be gone since the listing.
        assert!(!spool
            .read_envelope("GONE")
            .unwrap_err()
            .is_corrupt_envelope());

        let corrupt = spool.set_aside(&id).unwrap();
        for (id, _) in &entries {
            spool.set_aside(id).unwrap();
        }
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(&new).unwrap().count(), 0);
        assert_eq!(
            fs::read(corrupt.join("NOTRAILER.msg")).unwrap(),
            b"the message"
        );
        assert_eq!(
            fs::read(corrupt.join(format!("{id}.env"))).unwrap(),
            b"not an envelope"
        );
        assert!(corrupt.join(format!("{id}.msg")).exists());
    }

    #[test]
    fn recovery_removes_unacknowledged_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let id = committed(&spool, b"kept");
        let updated = committed(&spool, b"kept too");
        spool.update_envelope(&envelope(&updated)).unwrap();
        fs::write(dir.path().join("tmp/X.msg"), "torn").unwrap();
        fs::write(dir.path().join("tmp/Y.env.0123"), "torn update").unwrap();
        fs::write(dir.path().join("new/LONELY.env"), "its message removed").unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut writing = spool.begin().unwrap();
        writing.write(b"in progress elsewhere").unwrap();
        assert_eq!(spool.recover().unwrap(), 3);
        let mut expected = vec![id, updated.clone()];
        expected.sort();
        assert_eq!(spool.list().unwrap(), expected);
        assert!(dir.path().join(format!("new/{updated}.env")).exists());
        writing.write(b", still there").unwrap();
        let writing_id = writing.commit(&entry()).unwrap();
        assert_eq!(
            message(&spool, &writing_id),
            b"in progress elsewhere, still there"
        );
        assert!(!dir.path().join("tmp/X.msg").exists());
        assert!(!dir.path().join("new/LONELY.env").exists());
    }

    #[test]
    fn the_reused_buffer_carries_nothing_over() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut abandoned = spool.begin().unwrap();
        abandoned.write(b"never to be seen").unwrap();
        drop(abandoned);
        // Pieces below, across and above the buffer's size.
        let big = vec![b'y'; WRITE_BUFFER + 10];
        let pieces: [&[u8]; 4] = [b"a", &big[..WRITE_BUFFER - 1], &big, b"z"];
        let mut incoming = spool.begin().unwrap();
        for piece in pieces {
            incoming.write(piece).unwrap();
        }
        let id = incoming.commit(&entry()).unwrap();
        assert!(message(&spool, &id) == pieces.concat());
        let small = committed(&spool, b"small");
        assert_eq!(message(&spool, &small), b"small");
    }

    #[test]
    fn a_symlinked_tmp_or_new_is_not_followed() {
        for sub in ["tmp", "new"] {
            let dir = tempfile::tempdir().unwrap();
            Spool::open(dir.path()).unwrap();
            let elsewhere = dir.path().join("elsewhere");
            fs::create_dir(&elsewhere).unwrap();
            fs::remove_dir(dir.path().join(sub)).unwrap();
            std::os::unix::fs::symlink(&elsewhere, dir.path().join(sub)).unwrap();
            let error = Spool::open_existing(dir.path()).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "{}: a symbolic link: not followed",
                    dir.path().join(sub).display()
                )
            );
        }
    }

    #[test]
    fn queue_ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_queue_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
