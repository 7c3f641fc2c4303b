//! The durable-write steps every file of tinymta goes through, maildir style:
//! written in `tmp/`, fsync'd, renamed into place, the directory fsync'd.
//! A crash at any instant leaves the old state or the new one, never a torn file.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

/// Makes a rename or a new file in `dir` survive a crash: the directory entry
/// itself must reach the disk, not only the file's data (fsync(2), "Notes").
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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

/// Random bits from the operating system's cryptographic source, so that names
/// stay unique on a box whose clock and pids repeat at every boot.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source failed");
    u64::from_le_bytes(bytes)
}
