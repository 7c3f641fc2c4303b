//! Delivery into a user's Maildir: `mailbox_dir/<localpart>/{tmp,new,cur}`.
//!
//! The stored message has `Return-Path:` and `Delivered-To:` prepended (RFC
//! 5321 4.4) and Unix line ends, as Postfix's local delivery writes them: the
//! spool copy has CRLF and never a bare CR or LF, so the change is lossless.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{log_outcome, ItemResult, Job, JobItem, Outcome, Reporter};
use crate::config::Config;
use crate::smtp::address::Mailbox;
use crate::smtp::status::Status;
use crate::spool::durable::fsync_dir;
use crate::spool::queue::Failure;
use crate::spool::Spool;
use crate::sys::{self, Dir};

/// How many messages a worker delivers before it fsyncs the Maildir
/// directories it renamed into and reports them: one directory fsync then
/// covers up to this many deliveries, and a result waits for at most this
/// many.
pub const SYNC_BATCH: usize = 32;

/// One message's local outcomes, held until their directories are fsync'd.
struct Unreported {
    item: JobItem,
    /// Recipient index, outcome, and the directory the file went into.
    outcomes: Vec<(usize, Outcome, Option<PathBuf>)>,
}

/// Delivers a job's messages to their local recipients, reporting each.
///
/// A message is reported delivered only after its file and the directory
/// entry that names it are durable; the directory fsyncs are shared by the
/// messages of a batch (see [`SYNC_BATCH`]) rather than done one a message.
pub fn deliver_job(config: &Config, spool: &Spool, job: Job, reporter: &mut Reporter) {
    let mut unreported = Vec::new();
    let mut buffers = CopyBuffers::default();
    for item in job.items {
        let mut outcomes = Vec::new();
        for (index, rcpt) in &item.recipients {
            let delivered = spool
                .open_message(&item.id, item.size)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|mut text| {
                    let file_name = delivery_name(item.arrival, &item.id, *index, &config.hostname);
                    deliver_local(
                        &config.mailbox_dir,
                        &file_name,
                        &item.sender,
                        rcpt,
                        &mut text,
                        item.first_attempt,
                        &mut buffers,
                    )
                });
            outcomes.push(match delivered {
                Ok(path) => {
                    let dir = path.parent().map(Path::to_path_buf);
                    let text = format!("delivered to {}", path.display());
                    (*index, Outcome::Delivered(text), dir)
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => (
                    *index,
                    // RFC 3463 5.1.3: bad destination mailbox address syntax.
                    Outcome::Failed(Failure::ours(
                        Status::new(5, 1, 3),
                        format!("local delivery: {e}"),
                    )),
                    None,
                ),
                Err(e) => (
                    *index,
                    Outcome::Deferred(Failure::ours(
                        Status::new(4, 3, 0),
                        format!("local delivery: {e}"),
                    )),
                    None,
                ),
            });
        }
        unreported.push(Unreported { item, outcomes });
        if unreported.len() >= SYNC_BATCH {
            sync_and_report(&mut unreported, reporter);
        }
    }
    sync_and_report(&mut unreported, reporter);
}

/// fsyncs each directory the unreported deliveries went into, once, then
/// logs and reports them; a delivery whose directory could not be fsync'd
/// is deferred (tried again, it finds its file and adds no second copy).
fn sync_and_report(unreported: &mut Vec<Unreported>, reporter: &mut Reporter) {
    let mut dirs: Vec<&PathBuf> = unreported
        .iter()
        .flat_map(|u| u.outcomes.iter().filter_map(|(_, _, dir)| dir.as_ref()))
        .collect();
    dirs.sort();
    dirs.dedup();
    let failed: Vec<(PathBuf, io::Error)> = dirs
        .into_iter()
        .filter_map(|dir| fsync_dir(dir).err().map(|e| (dir.clone(), e)))
        .collect();
    for Unreported { item, outcomes } in unreported.drain(..) {
        let mut results = Vec::with_capacity(outcomes.len());
        // One outcome for each recipient, in the item's order.
        for ((index, mut outcome, dir), (_, rcpt)) in outcomes.into_iter().zip(&item.recipients) {
            if let Some((dir, e)) = failed.iter().find(|(f, _)| Some(f) == dir.as_ref()) {
                outcome = Outcome::Deferred(Failure::ours(
                    Status::new(4, 3, 0),
                    format!("local delivery: fsync {}: {e}", dir.display()),
                ));
            }
            log_outcome(&item, rcpt, "local", None, &outcome);
            results.push((index, outcome));
        }
        reporter.report(ItemResult {
            id: item.id,
            outcomes: results,
        });
    }
}

/// The Maildir file name of one queued message for one recipient:
/// `time.Q<queue id>I<recipient index>.host`, unique as the Maildir spec
/// asks, and the same each time. A delivery repeated after a crash (between
/// the rename into new/ and the queue's record of it) therefore finds its
/// file and adds no second copy.
pub fn delivery_name(arrival: u64, queue_id: &str, index: usize, hostname: &str) -> DeliveryName {
    let host = hostname.replace('/', "\\057").replace(':', "\\072");
    DeliveryName(format!("{arrival}.Q{queue_id}I{index}.{host}"))
}

/// A Maildir file name made by [`delivery_name`], and by nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryName(String);

impl DeliveryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a Maildir already holds the file `name`: in new/, or in cur/
/// with the info part a mail reader adds (`name:2,S`).
fn already_delivered(new: &Dir, cur: &Dir, name: &str) -> io::Result<Option<PathBuf>> {
    if new.entry(name)?.is_some() {
        return Ok(Some(new.path().join(name)));
    }
    let prefix = format!("{name}:");
    for entry in cur.names()? {
        let entry = entry.to_string_lossy();
        if entry.starts_with(&prefix) || entry == name {
            return Ok(Some(cur.path().join(&*entry)));
        }
    }
    Ok(None)
}

/// A Maildir directory that belongs to this process's user and that no one
/// else may write (RFC-less, but what Postfix's local(8) and dovecot insist
/// on too): anything else may be someone's trap, and is refused.
fn check_private(dir: &Dir) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = dir.metadata()?;
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: {why}; not delivered into", dir.path().display()),
        ))
    };
    if meta.uid() != sys::effective_uid() {
        return refuse(format!("owned by uid {}, not by this user", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Delivers the message read from `message` (the spool copy) to `recipient`.
/// Returns the path of the file: in the recipient's `new/`, or in `cur/`
/// for a copy a mail reader has already seen, which is looked for unless
/// this is the `first_attempt` (see [`JobItem`]). The file is fsync'd; the
/// fsync of the directory it is in is the caller's (`deliver_job` does it
/// once a batch).
///
/// Nothing is followed: the Maildir and its tmp/, new/ and cur/ are opened
/// without following a symlink, and the file is made new in tmp/ relative
/// to it, so that a symlink planted anywhere in the Maildir makes this
/// delivery fail (and be tried again), never write elsewhere. A Maildir that
/// is not this user's alone is refused.
pub fn deliver_local(
    mailbox_dir: &Path,
    file_name: &DeliveryName,
    sender: &str,
    recipient: &Mailbox,
    message: &mut impl Read,
    first_attempt: bool,
    buffers: &mut CopyBuffers,
) -> io::Result<PathBuf> {
    let name = recipient
        .mailbox_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid mailbox name"))?;
    let maildir = open_mailbox_dir(mailbox_dir)?.sub_dir(&name, MAILDIR_MODE)?;
    check_private(&maildir)?;
    let [tmp, new, cur] = ["tmp", "new", "cur"].map(|sub| maildir.sub_dir(sub, MAILDIR_MODE));
    let (tmp, new, cur) = (tmp?, new?, cur?);
    let file_name = file_name.as_str();
    if !first_attempt {
        if let Some(path) = already_delivered(&new, &cur, file_name)? {
            return Ok(path);
        }
    }
    let file = match tmp.create_file(file_name, 0o600) {
        // A leftover of an interrupted attempt is replaced; anything else
        // at that name was put there by someone else, and is left alone.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            use std::os::unix::fs::MetadataExt;
            let leftover = tmp.entry(file_name)?.is_some_and(|meta| {
                meta.file_type().is_file() && meta.uid() == sys::effective_uid()
            });
            if !leftover {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{}: not a file of this user's: not written over",
                        tmp.path().join(file_name).display()
                    ),
                ));
            }
            tmp.remove_file(file_name)?;
            tmp.create_file(file_name, 0o600)?
        }
        other => other?,
    };
    let written = write_message(file, sender, recipient, message, buffers);
    if let Err(e) = written {
        let _ = tmp.remove_file(file_name);
        return Err(e);
    }
    tmp.rename(file_name, &new, file_name)?;
    Ok(new.path().join(file_name))
}

/// `mailbox_dir`, made by the first local delivery that needs it (a box
/// that only forwards has none), by this process: the daemon after its
/// privilege drop, so the directory is its user's, mode 0700.
fn open_mailbox_dir(mailbox_dir: &Path) -> io::Result<Dir> {
    match Dir::open(mailbox_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::PermissionsExt;
            crate::spool::durable::create_dir_durably(mailbox_dir)
                .and_then(|()| {
                    std::fs::set_permissions(
                        mailbox_dir,
                        std::fs::Permissions::from_mode(MAILDIR_MODE),
                    )
                })
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot make mailbox_dir {}: {e}", mailbox_dir.display()),
                    )
                })?;
            Dir::open(mailbox_dir)
        }
        other => other,
    }
}

/// Maildirs and their tmp/, new/ and cur/ are the mail user's alone.
const MAILDIR_MODE: u32 = 0o700;

/// How much of a message is read, and written, at a time.
const COPY_CHUNK: usize = 64 * 1024;

/// The buffers of a job's copies, reused from message to message: with
/// musl's malloc, fresh ones for every message cost mmaps, munmaps and
/// page faults.
#[derive(Default)]
pub struct CopyBuffers {
    read: Vec<u8>,
    out: Vec<u8>,
}

fn write_message(
    mut file: File,
    sender: &str,
    recipient: &Mailbox,
    message: &mut impl Read,
    buffers: &mut CopyBuffers,
) -> io::Result<()> {
    let CopyBuffers { read, out } = buffers;
    read.resize(COPY_CHUNK, 0);
    out.clear();
    write!(
        out,
        "Return-Path: <{sender}>\nDelivered-To: {}\n",
        recipient.to_string().to_ascii_lowercase()
    )?;
    let mut pending_cr = false;
    loop {
        let n = message.read(read)?;
        if n == 0 {
            break;
        }
        crlf_to_lf(&read[..n], &mut pending_cr, out)?;
        if out.len() >= COPY_CHUNK {
            file.write_all(out)?;
            out.clear();
        }
    }
    if pending_cr {
        out.push(b'\r');
    }
    file.write_all(out)?;
    file.sync_all()
}

/// Writes `data` with each CRLF turned into LF; a CR at the end of `data` is
/// held in `pending_cr` until the next piece shows what follows it.
fn crlf_to_lf(data: &[u8], pending_cr: &mut bool, out: &mut impl Write) -> io::Result<()> {
    let mut start = 0;
    if *pending_cr {
        *pending_cr = false;
        if data.first() != Some(&b'\n') {
            out.write_all(b"\r")?;
        }
    }
    while let Some(offset) = data[start..].iter().position(|&b| b == b'\r') {
        let cr = start + offset;
        out.write_all(&data[start..cr])?;
        match data.get(cr + 1) {
            Some(b'\n') => start = cr + 1,
            Some(_) => {
                out.write_all(b"\r")?;
                start = cr + 1;
            }
            None => {
                *pending_cr = true;
                return Ok(());
            }
        }
    }
    out.write_all(&data[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::parse_mailbox;
    #[test]
    fn line_ends_in_any_chunking() {
        let input = b"a\r\nb\r\n\r\nlast\r\n";
        for chunk in 1..input.len() {
            let mut out = Vec::new();
            let mut pending = false;
            for piece in input.chunks(chunk) {
                crlf_to_lf(piece, &mut pending, &mut out).unwrap();
            }
            assert!(!pending);
            assert_eq!(out, b"a\nb\n\nlast\n", "chunk {chunk}");
        }
    }

    #[test]
    fn buffers_carry_nothing_from_one_message_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let rcpt = parse_mailbox("bob@example.org").unwrap();
        let mut buffers = CopyBuffers::default();
        // Longer than a chunk, with a CRLF across each chunk boundary.
        let big = "x".repeat(COPY_CHUNK - 1) + "\r\n" + &"line\r\n".repeat(30_000);
        for (n, text) in [big.as_str(), "short\r\n", ""].into_iter().enumerate() {
            let path = dir.path().join(n.to_string());
            let file = File::create(&path).unwrap();
            write_message(file, "a@b.org", &rcpt, &mut text.as_bytes(), &mut buffers).unwrap();
            let expected = format!(
                "Return-Path: <a@b.org>\nDelivered-To: bob@example.org\n{}",
                text.replace("\r\n", "\n")
            );
            assert!(
                std::fs::read(&path).unwrap() == expected.as_bytes(),
                "message {n}"
            );
        }
    }

    #[test]
    fn delivers_into_new() {
        let dir = tempfile::tempdir().unwrap();
        let spool_copy = dir.path().join("m");
        std::fs::write(&spool_copy, b"Subject: hi\r\n\r\nbody\r\n").unwrap();
        let rcpt = parse_mailbox("Bob@Example.org").unwrap();
        let boxes = dir.path().join("mail");
        std::fs::create_dir(&boxes).unwrap();
        let name = delivery_name(1795364407, "ABC", 0, "mx.example.org");
        assert_eq!(name.as_str(), "1795364407.QABCI0.mx.example.org");
        let deliver = || {
            let mut spooled = File::open(&spool_copy).unwrap();
            deliver_local(
                &boxes,
                &name,
                "alice@example.net",
                &rcpt,
                &mut spooled,
                false,
                &mut CopyBuffers::default(),
            )
            .unwrap()
        };
        let path = deliver();
        assert!(path.starts_with(boxes.join("bob/new")));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"Return-Path: <alice@example.net>\nDelivered-To: bob@example.org\n\
              Subject: hi\n\nbody\n"
        );
        assert!(boxes.join("bob/cur").is_dir());
        assert_eq!(std::fs::read_dir(boxes.join("bob/tmp")).unwrap().count(), 0);
        // Delivering the same again (after a crash) adds no second copy,
        // also once a mail reader has moved it to cur/.
        let again = deliver();
        assert_eq!(again, path);
        let read = boxes.join("bob/cur").join(format!("{}:2,S", name.as_str()));
        std::fs::rename(&path, &read).unwrap();
        assert_eq!(deliver(), read);
        assert_eq!(std::fs::read_dir(boxes.join("bob/new")).unwrap().count(), 0);
    }

    /// Delivers "Subject: hi" to `user` under `boxes`; the error's text.
    fn refused(boxes: &Path, user: &str) -> String {
        let rcpt = parse_mailbox(&format!("{user}@example.org")).unwrap();
        let name = delivery_name(1, "ABC", 0, "mx.example.org");
        deliver_local(
            boxes,
            &name,
            "a@example.net",
            &rcpt,
            &mut &b"Subject: hi\r\n\r\nbody\r\n"[..],
            true,
            &mut CopyBuffers::default(),
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn nothing_in_a_maildir_is_followed_or_written_over() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let boxes = dir.path().join("mail");
        let elsewhere = dir.path().join("attacker");
        std::fs::create_dir_all(elsewhere.join("new")).unwrap();
        std::fs::create_dir(&boxes).unwrap();
        // A symlinked Maildir.
        symlink(&elsewhere, boxes.join("bob")).unwrap();
        assert_eq!(
            refused(&boxes, "bob"),
            format!(
                "{}: a symbolic link: not followed",
                boxes.join("bob").display()
            )
        );
        // A symlinked new/.
        for sub in ["tmp", "cur"] {
            std::fs::create_dir_all(boxes.join("carol").join(sub)).unwrap();
        }
        std::fs::set_permissions(boxes.join("carol"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        symlink(elsewhere.join("new"), boxes.join("carol/new")).unwrap();
        assert_eq!(
            refused(&boxes, "carol"),
            format!(
                "{}: a symbolic link: not followed",
                boxes.join("carol/new").display()
            )
        );
        assert_eq!(std::fs::read_dir(elsewhere.join("new")).unwrap().count(), 0);
        // A symlink planted at the next delivery's name in tmp/: its target
        // is neither truncated nor written.
        let victim = elsewhere.join("victim");
        std::fs::write(&victim, "someone's mail").unwrap();
        std::fs::create_dir_all(boxes.join("dave/tmp")).unwrap();
        std::fs::set_permissions(boxes.join("dave"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let planted = boxes.join("dave/tmp/1.QABCI0.mx.example.org");
        symlink(&victim, &planted).unwrap();
        assert_eq!(
            refused(&boxes, "dave"),
            format!(
                "{}: not a file of this user's: not written over",
                planted.display()
            )
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"someone's mail");
        // A Maildir others may write into.
        std::fs::create_dir(boxes.join("erin")).unwrap();
        std::fs::set_permissions(boxes.join("erin"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        assert_eq!(
            refused(&boxes, "erin"),
            format!(
                "{}: writable by group or others (mode 777); not delivered into",
                boxes.join("erin").display()
            )
        );
        // A leftover of an interrupted delivery of ours is replaced.
        std::fs::create_dir_all(boxes.join("fay/tmp")).unwrap();
        std::fs::set_permissions(boxes.join("fay"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(boxes.join("fay/tmp/1.QABCI0.mx.example.org"), "torn").unwrap();
        let rcpt = parse_mailbox("fay@example.org").unwrap();
        let path = deliver_local(
            &boxes,
            &delivery_name(1, "ABC", 0, "mx.example.org"),
            "a@example.net",
            &rcpt,
            &mut &b"Subject: hi\r\n\r\nbody\r\n"[..],
            true,
            &mut CopyBuffers::default(),
        )
        .unwrap();
        assert!(std::fs::read(path)
            .unwrap()
            .ends_with(b"Subject: hi\n\nbody\n"));
    }
}
