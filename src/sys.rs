//! The only `unsafe` in tinymta: signals, privileges and a few file system
//! calls, through libc.
//! Everything here is a thin, checked wrapper with a safe interface.

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

/// Becomes `account` for good: supplementary groups dropped, then the group,
/// then the user; and then checks that root cannot be had back.
pub fn drop_privileges(account: &Account) -> Result<(), String> {
    let gid = account.gid as libc::gid_t;
    let uid = account.uid as libc::uid_t;
    // SAFETY: plain system calls with integer arguments and a pointer to one gid.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(format!("setgroups: {}", io::Error::last_os_error()));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(format!("setgid({gid}): {}", io::Error::last_os_error()));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(format!("setuid({uid}): {}", io::Error::last_os_error()));
        }
        if uid != 0 && (libc::setuid(0) == 0 || libc::seteuid(0) == 0) {
            return Err("root privileges could be regained after dropping them".to_string());
        }
        if libc::getuid() != uid || libc::geteuid() != uid || libc::getegid() != gid {
            return Err("the user or group ids did not change".to_string());
        }
    }
    Ok(())
}
