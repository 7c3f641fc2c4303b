//! Submission: one message from standard input, its header section
//! mended and completed, queued with the same durable write as the server.

use std::io::BufRead;

use super::args::Options;
use super::headers::{header_recipients, masquerade_text, qualify_header, quote_phrase};
use crate::aliases::{add_recipient, Aliases};
use crate::config::Config;
use crate::message::header;
use crate::smtp::address::{parse_mailbox, AddressError, Mailbox};
use crate::spool::{NewEntry, Spool, SpoolError};
use crate::sysexits as exit;
use crate::time::{rfc5322_date, unix_now};

/// A failure to queue, with the sysexits code to leave with.
#[derive(Debug)]
pub struct SubmitError {
    pub code: u8,
    pub message: String,
}

impl SubmitError {
    fn new(code: u8, message: impl Into<String>) -> SubmitError {
        SubmitError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SubmitError {}

impl From<SpoolError> for SubmitError {
    fn from(e: SpoolError) -> SubmitError {
        let mut message = e.to_string();
        if e.is_permission_denied() && !crate::sys::is_root() {
            // Not a bare EACCES: say what lets an ordinary user queue.
            message.push_str(
                "\nordinary users queue mail through the set-group-id install: \
                 chgrp mail tinymta && chmod 2755 tinymta (README: Security)",
            );
        }
        SubmitError::new(exit::TEMPFAIL, message)
    }
}

/// Who runs this: for the envelope sender and the Received: line.
pub struct Submitter {
    pub login: String,
    pub uid: u32,
}

/// Reads a message from `input` and queues it; returns its queue id.
pub fn submit(
    config: &Config,
    aliases: Option<&Aliases>,
    options: &Options,
    submitter: &Submitter,
    input: &mut dyn BufRead,
) -> Result<String, SubmitError> {
    let sender = envelope_sender(config, options, submitter)?;
    let header_bytes = read_header_section(input, options.ignore_dots, config)?;
    let headers = header::fields(&header_bytes);
    let mut recipients: Vec<Mailbox> = Vec::new();
    let mut add = |address: &str| -> Result<(), SubmitError> {
        let mailbox = qualify(address, config).map_err(|e| {
            SubmitError::new(exit::NOUSER, format!("bad recipient {address:?}: {e}"))
        })?;
        add_recipient(config, aliases, &mut recipients, mailbox);
        Ok(())
    };
    for arg in &options.recipients {
        for address in arg.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            add(address)?;
        }
    }
    if options.from_headers {
        for address in header_recipients(&header_bytes) {
            add(&address)?;
        }
    }
    if recipients.is_empty() {
        return Err(SubmitError::new(exit::USAGE, "no recipients given"));
    }
    let spool = Spool::for_submission(&config.spool_dir)?;
    let mut message = spool.begin()?;
    let now = unix_now();
    let date = rfc5322_date(now);
    // RFC 5321 4.4: a trace line for local submission, as Postfix writes it.
    message.write(
        format!(
            "Received: by {} (tinymta, from userid {})\r\n\tid {}; {date}\r\n",
            config.hostname, submitter.uid, message.id
        )
        .as_bytes(),
    )?;
    let has = |name: &str| headers.iter().any(|field| header::is_named(field, name));
    let (has_from, has_date, has_id) = (has("From"), has("Date"), has("Message-ID"));
    for &field in &headers {
        // -t: Bcc: recipients get the message, but nobody sees the line.
        if options.from_headers && header::is_named(field, "Bcc") {
            continue;
        }
        let is = |name: &str| header::is_named(field, name);
        // Text already: the section was read as UTF-8 (lossily) and cut at line ends.
        let written = String::from_utf8_lossy(field);
        // RFC 5322 3.4 wants addr-spec with a domain; cron and mdadm write
        // `root`: qualified as the envelope's recipients are (RFC 6409 8
        // lets a submission agent mend such messages).
        let text = if ["From", "To", "Cc", "Reply-To", "Sender"]
            .iter()
            .any(|n| is(n))
        {
            qualify_header(&written, &config.qualify_domain)
        } else {
            written.into_owned()
        };
        let text = if is("From") {
            masquerade_text(&text, config)
        } else {
            text
        };
        message.write(text.as_bytes())?;
    }
    // RFC 5322 3.6 wants From: and Date:; RFC 6409 8 lets a submission
    // agent add them and Message-ID:.
    if !has_from {
        let from = match (&options.full_name, sender.as_ref()) {
            (Some(name), Some(sender)) => format!("From: {} <{sender}>\r\n", quote_phrase(name)),
            (None, Some(sender)) => format!("From: {sender}\r\n"),
            (_, None) => format!("From: MAILER-DAEMON@{}\r\n", config.hostname),
        };
        message.write(from.as_bytes())?;
    }
    if !has_date {
        message.write(format!("Date: {date}\r\n").as_bytes())?;
    }
    if !has_id {
        message
            .write(format!("Message-ID: <{}@{}>\r\n", message.id, config.hostname).as_bytes())?;
    }
    message.write(b"\r\n")?;
    copy_body(input, options.ignore_dots, &mut |line| message.write(line))?;
    let entry = NewEntry {
        arrival: now,
        client: "local".to_string(),
        helo: submitter.login.clone(),
        sender,
        body: None,
        recipients,
    };
    let size = message.size();
    let id = message.commit(&entry)?;
    entry.log_accepted(&id, size, &format!(" uid={}", submitter.uid));
    Ok(id)
}

/// The envelope sender: `-f`, else the user at `qualify_domain`; local
/// domains masqueraded. `None` is `<>`. (`send_as` replaces it when the
/// mail leaves the box: deliver::outgoing.)
fn envelope_sender(
    config: &Config,
    options: &Options,
    submitter: &Submitter,
) -> Result<Option<Mailbox>, SubmitError> {
    let text = match &options.sender {
        Some(given) => given
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
        None => submitter.login.clone(),
    };
    if text.is_empty() {
        return Ok(None);
    }
    let mut mailbox = qualify(&text, config)
        .map_err(|e| SubmitError::new(exit::DATAERR, format!("bad sender {text:?}: {e}")))?;
    if let Some(domain) = &config.masquerade_domain {
        if config.is_local_domain(&mailbox.domain) || mailbox.domain == config.qualify_domain {
            mailbox.domain = domain.clone();
        }
    }
    Ok(Some(mailbox))
}

/// `root` -> `root@qualify_domain`; a full address as it is.
pub fn qualify(address: &str, config: &Config) -> Result<Mailbox, AddressError> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    if address.contains('@') {
        parse_mailbox(address)
    } else {
        parse_mailbox(&format!("{address}@{}", config.qualify_domain))
    }
}

/// A header line as tools write it, cleaned as the body is (see
/// `copy_body`): a CR inside the line becomes a space and a NUL is dropped;
/// its line end is kept.
fn clean_text_line(line: &str) -> String {
    let content = line.trim_end_matches(['\r', '\n']);
    let end = &line[content.len()..];
    let mut out: String = content
        .chars()
        .filter(|&c| c != '\0')
        .map(|c| if c == '\r' { ' ' } else { c })
        .collect();
    out.push_str(end);
    out
}

/// Reads the header section (up to the empty line, or the first line that
/// is no header field, which then starts the body). Returns its text, CRLF
/// line ends.
fn read_header_section(
    input: &mut dyn BufRead,
    ignore_dots: bool,
    config: &Config,
) -> Result<Vec<u8>, SubmitError> {
    let mut raw = Vec::new();
    loop {
        let buf = input
            .fill_buf()
            .map_err(|e| SubmitError::new(exit::SOFTWARE, e.to_string()))?;
        if buf.is_empty() {
            return Ok(raw);
        }
        // Peek at the next line without taking it, in case it is body.
        let end = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |p| p + 1);
        let line = String::from_utf8_lossy(&buf[..end]).into_owned();
        let line = clean_text_line(&line);
        let content = line.trim_end_matches(['\r', '\n']);
        let is_continuation = content.starts_with([' ', '\t']) && !raw.is_empty();
        let is_field = header::is_field_start(content.as_bytes());
        if content.is_empty() {
            input.consume(end);
            return Ok(raw);
        }
        if !ignore_dots && content == "." {
            // The end of the whole message, before any body.
            return Ok(raw);
        }
        if !is_continuation && !is_field {
            return Ok(raw);
        }
        input.consume(end);
        raw.extend_from_slice(content.as_bytes());
        raw.extend_from_slice(b"\r\n");
        if raw.len() as u64 > config.max_header_size {
            return Err(SubmitError::new(exit::DATAERR, "header section too large"));
        }
    }
}

/// The rest of the input, line by line with CRLF line ends; a lone dot ends
/// it unless `ignore_dots`. A bare CR is kept out (RFC 5321 2.3.8).
fn copy_body(
    input: &mut dyn BufRead,
    ignore_dots: bool,
    write: &mut dyn FnMut(&[u8]) -> Result<(), SpoolError>,
) -> Result<(), SubmitError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| SubmitError::new(exit::SOFTWARE, e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !ignore_dots && line == b"." {
            return Ok(());
        }
        // A bare CR (cron's progress bars) becomes a space (RFC 5321 2.3.8
        // allows CR only before LF); a NUL is dropped (RFC 2045 2.7 allows
        // none): the alert is still delivered, and nothing passes on either.
        line.retain(|&b| b != 0);
        for b in line.iter_mut() {
            if *b == b'\r' {
                *b = b' ';
            }
        }
        line.extend_from_slice(b"\r\n");
        write(&line)?;
    }
}
