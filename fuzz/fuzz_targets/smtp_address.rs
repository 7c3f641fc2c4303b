//! Any path text: a Path and the rest of the line, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinymta::smtp::address::{parse_mailbox, parse_path, Path};

fuzz_target!(|text: &str| {
    if let Ok((Path::Mailbox(mailbox), rest)) = parse_path(text) {
        assert!(text.ends_with(rest));
        // What was accepted reads back the same.
        let again = parse_mailbox(&mailbox.to_string()).expect("a printed mailbox parses");
        assert_eq!(again, mailbox);
        let _ = mailbox.local_unquoted();
    }
    let _ = parse_mailbox(text);
});
