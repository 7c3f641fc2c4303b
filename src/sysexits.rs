//! The exit codes of sysexits.h (4.4BSD), which sendmail and the tools
//! that call it read: 75 (EX_TEMPFAIL) tells cron or a script "try again
//! later", 67 (EX_NOUSER) "that recipient will never work". Written once
//! here for the `tinymta` command, the sendmail entry point and test-send.
//!
//! The comments are sysexits.h's own, shortened.

/// EX_OK: successful termination.
pub const OK: u8 = 0;
/// EX_USAGE: the command was used incorrectly (wrong arguments, a bad flag).
pub const USAGE: u8 = 64;
/// EX_DATAERR: the input data was incorrect in some way.
pub const DATAERR: u8 = 65;
/// EX_NOUSER: the user specified did not exist (an addressee).
pub const NOUSER: u8 = 67;
/// EX_SOFTWARE: an internal software error was detected.
pub const SOFTWARE: u8 = 70;
/// EX_TEMPFAIL: a temporary failure; the user is invited to retry.
pub const TEMPFAIL: u8 = 75;
/// EX_NOPERM: insufficient permission to perform the operation.
pub const NOPERM: u8 = 77;
/// EX_CONFIG: something was found in an unconfigured or misconfigured state.
pub const CONFIG: u8 = 78;
