//! Embeds when this tinymta was built, for the start-up warning about a
//! clock set before it (a router without a battery-backed clock starts in
//! the past, and every certificate then looks not yet valid).
//!
//! The time is `SOURCE_DATE_EPOCH` where the build sets it (reproducible
//! builds: OpenWrt, Buildroot, Debian), else the time of the git commit
//! built: both are fixed for a given source, so the binary stays
//! reproducible, and both are at or before the real build date, so the
//! warning never fires on a right clock. A build from a tarball without
//! either embeds nothing, and the check is skipped.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let from_env = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|secs| secs.parse::<u64>().is_ok());
    let time = from_env.or_else(git_commit_time);
    if let Some(time) = time {
        println!("cargo:rustc-env=TINYMTA_BUILD_TIME={time}");
    }
}

/// The committer time of HEAD, and what makes cargo look again after a
/// new commit (HEAD and the branch it names).
fn git_commit_time() -> Option<String> {
    for name in ["HEAD", "refs/heads"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    git(&["log", "-1", "--format=%ct"]).filter(|secs| secs.parse::<u64>().is_ok())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}
