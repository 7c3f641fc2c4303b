//! The only `unsafe` in tinymta: signals, privileges and a few file system
//! calls, through libc.
//! Everything here is a thin, checked wrapper with a safe interface.

// The one module where the crate's `#![deny(unsafe_code)]` is lifted.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;

/// The signals tinymta acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: stop.
    Terminate,
    /// SIGHUP: reopen the log, re-read the config.
    Reload,
    /// SIGUSR1: run the queue now.
    RunQueue,
}

const HANDLED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1];

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given; sigaddset only
    // adds valid signal numbers to an initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in HANDLED {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks the handled signals in this thread and in every thread started
/// after it, so that only [`wait_for_signal`] receives them. Call it first
/// thing in `main`, before any thread exists.
pub fn block_signals() -> io::Result<()> {
    let set = handled_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Waits for the next handled signal (they must be blocked).
pub fn wait_for_signal() -> Signal {
    let set = handled_set();
    loop {
        let mut signal: libc::c_int = 0;
        // SAFETY: `set` is initialised and `signal` is a valid out-pointer.
        let rc = unsafe { libc::sigwait(&set, &mut signal) };
        if rc != 0 {
            continue;
        }
        match signal {
            libc::SIGTERM | libc::SIGINT => return Signal::Terminate,
            libc::SIGHUP => return Signal::Reload,
            libc::SIGUSR1 => return Signal::RunQueue,
            _ => continue,
        }
    }
}

/// Sends a signal to a process (for `tinymta flush` and tests).
pub fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let number = match signal {
        Signal::Terminate => libc::SIGTERM,
        Signal::Reload => libc::SIGHUP,
        Signal::RunQueue => libc::SIGUSR1,
    };
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid, number) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The real user running this process: its login name and uid (the name
/// is the uid in digits when the password database does not know it).
pub fn real_user() -> (String, u32) {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all pointers point at live, correctly sized storage.
    let name = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() {
            Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
        } else {
            None
        }
    };
    (name.unwrap_or_else(|| uid.to_string()), uid)
}

/// Whether this process runs with ids it was given by a set-user-id or
/// set-group-id binary: its real and effective ids differ. Such a process
/// may only submit mail (see main.rs).
pub fn privileged() -> bool {
    // SAFETY: these calls cannot fail.
    unsafe { libc::getuid() != libc::geteuid() || libc::getgid() != libc::getegid() }
}

/// Gives up what set-user-id or set-group-id bits gave: the effective and
/// saved ids become the real ones.
pub fn drop_set_ids() -> io::Result<()> {
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        let (gid, uid) = (libc::getgid(), libc::getuid());
        if libc::setresgid(gid, gid, gid) != 0 || libc::setresuid(uid, uid, uid) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The real user id (who ran this process, whatever set-id bits say).
pub fn real_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// Sets the file mode creation mask; returns the old one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Commits the file system that `file` is on (syncfs(2)): how a process
/// that may write a directory but not read it (the maildrop) makes its new
/// entry there durable, as it cannot open the directory to fsync it.
pub fn sync_file_system(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the life of `file`.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The IP addresses of this machine's network interfaces (getifaddrs(3)).
pub fn local_addresses() -> io::Result<Vec<std::net::IpAddr>> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that is read here
    // only while it lives, then freed once; each address is read as the
    // family it says it is.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut entry = list;
        while !entry.is_null() {
            let addr = (*entry).ifa_addr;
            if !addr.is_null() {
                match (*addr).sa_family as libc::c_int {
                    libc::AF_INET => {
                        let v4 = &*(addr as *const libc::sockaddr_in);
                        let octets = v4.sin_addr.s_addr.to_ne_bytes();
                        found.push(std::net::IpAddr::from(octets));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(addr as *const libc::sockaddr_in6);
                        found.push(std::net::IpAddr::from(v6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    Ok(found)
}

/// Looks a group up by name: its gid, or `None` if there is no such group.
pub fn find_group(name: &str) -> io::Result<Option<u32>> {
    let c_name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all pointers point at live, correctly sized storage; the
    // result pointer is either null or points at `grp`.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            c_name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok((!result.is_null()).then_some(grp.gr_gid))
    }
}

/// Whether the real user and group (not the set-group-id one) may read
/// `path`: access(2) checks with the real ids.
pub fn real_user_can_read(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c_path.as_ptr(), libc::R_OK) == 0 }
}

/// open(2)'s flag that refuses a symlink as the last component, for
/// `OpenOptionsExt::custom_flags`.
pub const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// Whether this process may make entries in the directory `path`
/// (access(2) with write and search; a read-only file system says no).
pub fn may_write_dir(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// The file system `path` is on when it keeps its files in memory only
/// (`tmpfs`, `ramfs`: gone at reboot), from statfs(2)'s `f_type` and the
/// magic numbers of linux/magic.h; `None` for any other.
pub fn memory_file_system(path: &std::path::Path) -> io::Result<Option<&'static str>> {
    use std::os::unix::ffi::OsStrExt;
    const TMPFS_MAGIC: u32 = 0x0102_1994;
    const RAMFS_MAGIC: u32 = 0x8584_58f6;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statfs is plain data, for which all zeroes is a valid value.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statfs for the kernel to fill.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type is signed on some targets, unsigned on others, 32 or 64 bits
    // wide; the magic numbers are 32 bits (ramfs's has the top bit set).
    Ok(match stat.f_type as u32 {
        TMPFS_MAGIC => Some("tmpfs"),
        RAMFS_MAGIC => Some("ramfs"),
        _ => None,
    })
}

/// Whether this process runs with root's effective user id.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A user account from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Looks a user up by name; `None` if there is no such user.
pub fn find_user(name: &str) -> io::Result<Option<Account>> {
    let c_name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all pointers point at live, correctly sized storage; the
    // result pointer is either null or points at `pwd`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        Ok(Some(Account {
            name: CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }))
    }
}

/// Which step of the privilege drop failed; the daemon does not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrivilegeError {
    SetGroups(io::Error),
    SetGid {
        gid: u32,
        error: io::Error,
    },
    SetUid {
        uid: u32,
        error: io::Error,
    },
    /// setuid(0) or seteuid(0) succeeded after the drop.
    Regained,
    /// The calls succeeded and the ids are still the old ones.
    Unchanged,
}

impl std::fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivilegeError::SetGroups(error) => write!(f, "setgroups: {error}"),
            PrivilegeError::SetGid { gid, error } => write!(f, "setgid({gid}): {error}"),
            PrivilegeError::SetUid { uid, error } => write!(f, "setuid({uid}): {error}"),
            PrivilegeError::Regained => {
                f.write_str("root privileges could be regained after dropping them")
            }
            PrivilegeError::Unchanged => f.write_str("the user or group ids did not change"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// Becomes `account` for good: supplementary groups dropped, then the group,
/// then the user; and then checks that root cannot be had back.
pub fn drop_privileges(account: &Account) -> Result<(), PrivilegeError> {
    let gid = account.gid as libc::gid_t;
    let uid = account.uid as libc::uid_t;
    // SAFETY: plain system calls with integer arguments and a pointer to one gid.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(PrivilegeError::SetGroups(io::Error::last_os_error()));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(PrivilegeError::SetGid {
                gid,
                error: io::Error::last_os_error(),
            });
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(PrivilegeError::SetUid {
                uid,
                error: io::Error::last_os_error(),
            });
        }
        if uid != 0 && (libc::setuid(0) == 0 || libc::seteuid(0) == 0) {
            return Err(PrivilegeError::Regained);
        }
        if libc::getuid() != uid || libc::geteuid() != uid || libc::getegid() != gid {
            return Err(PrivilegeError::Unchanged);
        }
    }
    Ok(())
}

/// A directory held open, so that what is made in it is made there and
/// nowhere a symlink points: every name is looked up relative to it
/// (openat, mkdirat, renameat, unlinkat) and no symlink is followed.
#[derive(Debug)]
pub struct Dir {
    fd: std::os::fd::OwnedFd,
    path: std::path::PathBuf,
}

/// Adds the path to an error, so that a log line names it.
fn at_path(path: &std::path::Path, error: io::Error) -> io::Error {
    let text = if error.raw_os_error() == Some(libc::ELOOP) {
        "a symbolic link: not followed".to_string()
    } else {
        error.to_string()
    };
    io::Error::new(error.kind(), format!("{}: {text}", path.display()))
}

fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a file name: {name:?}"),
        ));
    }
    CString::new(name).map_err(|_| io::ErrorKind::InvalidInput.into())
}

impl Dir {
    /// Opens a directory named by the config (which may be reached through
    /// a symlink the admin made).
    pub fn open(path: &std::path::Path) -> io::Result<Dir> {
        use std::os::unix::ffi::OsStrExt;
        let c_path =
            CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let open = |mode: libc::c_int| {
            // SAFETY: a valid NUL-terminated path; the result is checked.
            unsafe { libc::open(c_path.as_ptr(), mode | libc::O_DIRECTORY | libc::O_CLOEXEC) }
        };
        let mut fd = open(libc::O_RDONLY);
        // One this process may pass through but not read (the spool, for
        // the set-group-id submitter): held by path only, see `open_sub`.
        if fd < 0 && io::Error::last_os_error().kind() == io::ErrorKind::PermissionDenied {
            fd = open(libc::O_PATH);
        }
        Dir::from_raw(fd, path.to_path_buf())
    }

    fn from_raw(fd: libc::c_int, path: std::path::PathBuf) -> io::Result<Dir> {
        use std::os::fd::FromRawFd;
        if fd < 0 {
            return Err(at_path(&path, io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(Dir { fd, path })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn raw(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// The directory `name` in this one, made (with `mode`) if missing;
    /// never a symlink.
    pub fn sub_dir(&self, name: &str, mode: u32) -> io::Result<Dir> {
        let path = self.path.join(name);
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name.
        if unsafe { libc::mkdirat(self.raw(), c.as_ptr(), mode as libc::mode_t) } == 0 {
            // The new entry is durable before anything is put below it.
            self.sync()?;
        } else {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::AlreadyExists {
                return Err(at_path(&path, error));
            }
        }
        // SAFETY: as above; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let error = io::Error::last_os_error();
            // With O_DIRECTORY, Linux says a symlink is "not a directory".
            let symlink = self
                .entry(name)?
                .is_some_and(|m| m.file_type().is_symlink());
            let error = if symlink {
                io::Error::from_raw_os_error(libc::ELOOP)
            } else {
                error
            };
            return Err(at_path(&path, error));
        }
        Dir::from_raw(fd, path)
    }

    /// The existing directory `name` in this one, never a symlink. Where
    /// this process may write the directory but not read it (the maildrop,
    /// for the set-group-id submitter), it is held by path only (O_PATH):
    /// enough to make files in it and rename them, not to list or fsync it.
    pub fn open_sub(&self, name: &str) -> io::Result<Dir> {
        let path = self.path.join(name);
        let c = c_name(name)?;
        let open = |mode: libc::c_int| {
            // SAFETY: a valid descriptor and NUL-terminated name.
            unsafe {
                libc::openat(
                    self.raw(),
                    c.as_ptr(),
                    mode | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            }
        };
        let mut fd = open(libc::O_RDONLY);
        if fd < 0 && io::Error::last_os_error().kind() == io::ErrorKind::PermissionDenied {
            fd = open(libc::O_PATH);
        }
        if fd < 0 {
            let error = io::Error::last_os_error();
            let symlink = self
                .entry(name)?
                .is_some_and(|m| m.file_type().is_symlink());
            let error = if symlink {
                io::Error::from_raw_os_error(libc::ELOOP)
            } else {
                error
            };
            return Err(at_path(&path, error));
        }
        Dir::from_raw(fd, path)
    }

    /// A new file `name`, made with `mode`: never over an existing name,
    /// never through a symlink.
    pub fn create_file(&self, name: &str, mode: u32) -> io::Result<std::fs::File> {
        use std::os::fd::FromRawFd;
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(at_path(&self.path.join(name), io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor that nothing else owns.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// What `name` is, without following it if it is a symlink; `None`
    /// if there is no such name.
    pub fn entry(&self, name: &str) -> io::Result<Option<std::fs::Metadata>> {
        // std has no fstatat; the path through /proc names this very
        // directory, whatever has been renamed since it was opened.
        let path = std::path::Path::new("/proc/self/fd")
            .join(self.raw().to_string())
            .join(c_name(name)?.to_str().unwrap_or_default());
        match std::fs::symlink_metadata(path) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at_path(&self.path.join(name), e)),
        }
    }

    /// The names in this directory.
    pub fn names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        let path = std::path::Path::new("/proc/self/fd").join(self.raw().to_string());
        std::fs::read_dir(path)
            .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|e| at_path(&self.path, e))
    }

    /// Removes the name `name` (a symlink itself, not what it points at).
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name.
        if unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) } != 0 {
            return Err(at_path(&self.path.join(name), io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Renames `name` here to `to_name` in `to`.
    pub fn rename(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        let (from, target) = (c_name(name)?, c_name(to_name)?);
        // SAFETY: valid descriptors and NUL-terminated names.
        if unsafe { libc::renameat(self.raw(), from.as_ptr(), to.raw(), target.as_ptr()) } != 0 {
            return Err(at_path(&to.path.join(to_name), io::Error::last_os_error()));
        }
        Ok(())
    }

    /// This directory's owner and mode (fstat).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.fd
            .try_clone()
            .and_then(|fd| std::fs::File::from(fd).metadata())
            .map_err(|e| at_path(&self.path, e))
    }

    /// fsync(2) of the directory: its entries are durable.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: a valid descriptor.
        if unsafe { libc::fsync(self.raw()) } != 0 {
            return Err(at_path(&self.path, io::Error::last_os_error()));
        }
        Ok(())
    }
}
