//! sendmail's command line: options or a usage error, never a panic (issue
//! 12, item 9a: `-é` was sliced through its é). The input is the arguments
//! separated by NUL bytes, as /proc/PID/cmdline holds them; the seeds in
//! corpus/sendmail_args are real command lines of cron, smartd and scripts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    if let Ok(options) = tinymta::sendmail::parse_args(&args) {
        assert!(options.recipients.len() <= args.len());
    }
});
