//! The sendmail-compatible entry point: what cron, smartd and scripts call
//! as /usr/sbin/sendmail. It reads one message from standard input and
//! queues it into the spool with the same durable write as the server, so it
//! works while the daemon is stopped; the daemon notices the new entry.

use std::io::BufRead;
use std::path::PathBuf;

use crate::aliases::add_recipient;
use crate::config::Config;
use crate::message::header::{self, Kind};
use crate::smtp::address::{parse_mailbox, Mailbox};
use crate::spool::{NewEntry, Spool, SpoolError};
use crate::sysexits as exit;
use crate::time::{rfc5322_date, unix_now};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Read a message and queue it (`-bm`, the default).
    Deliver,
    /// List the queue (`-bp`, `mailq`).
    ListQueue,
    /// Run the queue now (`-q`).
    RunQueue,
    /// Speak SMTP on standard input and output (`-bs`).
    Smtp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub recipients: Vec<String>,
    /// `-t`: recipients from To:, Cc: and Bcc: (Bcc: is then removed).
    pub from_headers: bool,
    /// `-i`, `-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-f ADDR`, `-r ADDR`: the envelope sender.
    pub sender: Option<String>,
    /// `-F NAME`: the full name for a From: header we add.
    pub full_name: Option<String>,
    /// `-C FILE`: another config file.
    pub config: Option<PathBuf>,
}

/// Parses sendmail's command line (without the program name).
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        mode: Mode::Deliver,
        recipients: Vec::new(),
        from_headers: false,
        ignore_dots: false,
        sender: None,
        full_name: None,
        config: None,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            options.recipients.extend(args[i..].iter().cloned());
            break;
        }
        let Some((mut flag, mut attached)) = split_flag(arg) else {
            options.recipients.push(arg.clone());
            continue;
        };
        // Flags without a value may be grouped, as getopt(3) allows and
        // busybox crond calls it (`-ti`); a flag with a value takes the rest
        // of the word (`-FCronDaemon`, `-oem`) or, without one, the next.
        loop {
            let value = |i: &mut usize| -> Result<String, String> {
                if !attached.is_empty() {
                    return Ok(attached.to_string());
                }
                let next = args
                    .get(*i)
                    .ok_or(format!("option -{flag} needs a value"))?;
                *i += 1;
                Ok(next.clone())
            };
            match flag {
                // -t, -i, and verbose, me too, no aliasing, initial
                // submission, errors mode: flags without a value.
                't' | 'i' | 'v' | 'm' | 'n' | 'U' | 'e' | 'G' => {
                    match flag {
                        't' => options.from_headers = true,
                        'i' => options.ignore_dots = true,
                        _ => {}
                    }
                    let mut rest = attached.chars();
                    match rest.next() {
                        Some(next) => {
                            flag = next;
                            attached = rest.as_str();
                            continue;
                        }
                        None => break,
                    }
                }
                'f' | 'r' => options.sender = Some(value(&mut i)?),
                'F' => options.full_name = Some(value(&mut i)?),
                'C' => options.config = Some(PathBuf::from(value(&mut i)?)),
                'b' => {
                    options.mode = match attached {
                        "m" => Mode::Deliver,
                        "p" => Mode::ListQueue,
                        "s" => Mode::Smtp,
                        // newaliases: tinymta reads the aliases file itself.
                        "i" | "I" => Mode::Deliver,
                        _ => return Err(format!("unsupported mode -b{attached}")),
                    }
                }
                // -q, -q15m, -qR...: run the queue.
                'q' => options.mode = Mode::RunQueue,
                'o' if attached == "i" => options.ignore_dots = true,
                // Delivery, error and other -o options (-odi, -oem): no
                // meaning here.
                'o' => {}
                // Flags of the same family that take a value: accepted, ignored.
                'B' | 'N' | 'R' | 'V' | 'L' | 'X' | 'h' | 'O' => {
                    value(&mut i)?;
                }
                _ => return Err(format!("unknown option {arg}")),
            }
            break;
        }
    }
    Ok(options)
}

/// `-fme` -> ('f', "me"); None for a word that is no option (`root`, `-`).
/// The flag is the character after the dash, whatever its length in bytes:
/// `-é` is an unknown option, not a cut through a character.
fn split_flag(arg: &str) -> Option<(char, &str)> {
    let mut chars = arg.strip_prefix('-')?.chars();
    let flag = chars.next()?;
    Some((flag, chars.as_str()))
}

/// The `mail` entry point (`mail -s SUBJECT ADDRESS < body`, as smartd's
/// warning script, ZFS zed, apcupsd and vendor scripts call it): the
/// sendmail options it stands for, and the header block it writes before
/// the body, which is standard input as it is (a lone dot ends nothing).
///
/// `-s SUBJECT`, `-r FROM`, `-c CC`, `-b BCC` and recipients, as bsd-mailx,
/// s-nail and GNU mailutils take them; `-C FILE` as sendmail's. `-a` is
/// refused: bsd-mailx reads it as a header and mailutils as an attachment,
/// so a script that uses it means one or the other.
pub fn parse_mail_args(args: &[String]) -> Result<(Options, String), String> {
    let mut options = Options {
        mode: Mode::Deliver,
        recipients: Vec::new(),
        from_headers: false,
        ignore_dots: true,
        sender: None,
        full_name: None,
        config: None,
    };
    let (mut to, mut cc, mut subject) = (Vec::new(), Vec::new(), None);
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            to.extend(args[i..].iter().cloned());
            break;
        }
        let Some((flag, attached)) = split_flag(arg) else {
            to.push(arg.clone());
            continue;
        };
        let mut value = || -> Result<String, String> {
            if !attached.is_empty() {
                return Ok(attached.to_string());
            }
            let next = args.get(i).ok_or(format!("option -{flag} needs a value"))?;
            i += 1;
            Ok(next.clone())
        };
        match flag {
            's' => subject = Some(value()?),
            'r' => options.sender = Some(value()?),
            'c' => cc.push(value()?),
            'b' => options.recipients.push(value()?),
            'C' => options.config = Some(PathBuf::from(value()?)),
            'a' => {
                return Err(
                    "-a is not supported: bsd-mailx reads it as a header, GNU mailutils as an \
                     attachment; put headers in the message and send it with sendmail -t"
                        .to_string(),
                )
            }
            // Do not read mail.rc; verbose; no interactive prompts.
            'n' | 'v' | 'N' | 'E' => {}
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    if to.is_empty() && cc.is_empty() && options.recipients.is_empty() {
        return Err("no recipients given".to_string());
    }
    let mut header = String::new();
    let list = |addresses: &[String]| {
        addresses
            .iter()
            .map(|a| one_line(a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !to.is_empty() {
        header.push_str(&format!("To: {}\n", list(&to)));
    }
    if !cc.is_empty() {
        header.push_str(&format!("Cc: {}\n", list(&cc)));
    }
    if let Some(subject) = subject {
        header.push_str(&format!(
            "Subject: {}\n",
            encode_header_text(&one_line(&subject))
        ));
    }
    // The body is what the script printed: UTF-8 text, 8 bits as they are.
    header.push_str(
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\
         Content-Transfer-Encoding: 8bit\n\n",
    );
    options.recipients.splice(0..0, to.into_iter().chain(cc));
    Ok((options, header))
}

/// A command-line value for a header: control characters (a line end that
/// would start a header of its own) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Header text as RFC 2047 encoded words where it is not ASCII, each
/// folded onto a line of its own (RFC 5322 2.2.3): the `mail` header block
/// has `\n` line ends, made CRLF as it is queued.
fn encode_header_text(text: &str) -> String {
    crate::message::encoded_word::encode(text, "\n ")
}

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
        add_recipient(config, &mut recipients, mailbox);
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
pub fn qualify(address: &str, config: &Config) -> Result<Mailbox, String> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    if address.contains('@') {
        parse_mailbox(address)
    } else {
        parse_mailbox(&format!("{address}@{}", config.qualify_domain))
    }
}

/// A whole header field (`To: root, "Cron" <admin>\r\n`) with every
/// address in it that has no domain given `@domain`: bare names, names in
/// angle brackets, names before a comment (`root (Cron Daemon)`). Quoted
/// strings, comments and group names are left as they are, and so is all
/// the rest of the text, white space and line folds included.
fn qualify_header(field: &str, domain: &str) -> String {
    let Some((name, value)) = field.split_once(':') else {
        return field.to_string();
    };
    let mut out = format!("{name}:");
    let flush_word = |word: &mut String, out: &mut String, is_address: bool| {
        if is_address && is_local_name(word) {
            word.push('@');
            word.push_str(domain);
        }
        out.push_str(word);
        word.clear();
    };
    let tokens = header::tokens(value);
    for (i, element) in header::elements(&tokens).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // A lone word is a whole address (RFC 5322 3.4 `addr-spec`, given
        // without its domain): the element has one word and no `<`
        // anywhere (a `<` even in a quoted name or comment makes it a
        // name-addr, whose address is what stands in the brackets).
        let lone = !element.iter().any(|t| t.written.contains('<')) && words(element) == 1;
        // The word being read: what stands in angle brackets, or what
        // stands between white space, commas and comments outside them (a
        // quoted local part and its `@domain` are one word).
        let mut word = String::new();
        let mut in_angle = false;
        for token in element {
            match token.kind {
                Kind::Special('<') => {
                    out.push_str(&word);
                    word.clear();
                    in_angle = true;
                    out.push('<');
                }
                Kind::Special('>') if in_angle => {
                    flush_word(&mut word, &mut out, true);
                    in_angle = false;
                    out.push('>');
                }
                Kind::Comment { .. } => {
                    flush_word(&mut word, &mut out, lone);
                    out.push_str(token.written);
                }
                Kind::Space if !in_angle => {
                    flush_word(&mut word, &mut out, lone);
                    out.push_str(token.written);
                }
                _ => word.push_str(token.written),
            }
        }
        flush_word(&mut word, &mut out, lone && !in_angle);
    }
    out
}

/// How many words an address-list element without angle brackets has
/// outside quotes and comments; a group's `name:` (RFC 5322 3.4 `group`)
/// counts as more than one, so that its name is never taken for an
/// address.
fn words(element: &[header::Token]) -> usize {
    let (mut words, mut in_word) = (0, false);
    for token in element {
        match token.kind {
            Kind::Space | Kind::Comment { .. } | Kind::Special(',') => in_word = false,
            Kind::Special(':' | ';') => words += 2,
            // A stray `>` neither starts a word nor ends one.
            Kind::Special('>' | '<') => {}
            Kind::Atom | Kind::Quoted | Kind::Special(_) => {
                if !in_word {
                    words += 1;
                    in_word = true;
                }
            }
        }
    }
    words
}

/// The From: header with local domains masqueraded.
fn masquerade_text(text: &str, config: &Config) -> String {
    let Some(domain) = &config.masquerade_domain else {
        return text.to_string();
    };
    let mut out = text.to_string();
    let mut locals: Vec<&String> = config.local_domains.iter().collect();
    locals.push(&config.qualify_domain);
    for local in locals {
        for end in ['>', ' ', ',', '\r'] {
            let from = format!("@{local}{end}");
            let to = format!("@{domain}{end}");
            out = replace_ignore_case(&out, &from, &to);
        }
    }
    out
}

fn replace_ignore_case(text: &str, from: &str, to: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let needle = from.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(pos) = lower[rest..].find(&needle) {
        out.push_str(&text[rest..rest + pos]);
        out.push_str(to);
        rest += pos + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// RFC 5322 3.2.5: a display name with specials is quoted. A line end or
/// any other control character (a `-F` value is anyone's) becomes a space,
/// so that no name can add a header line.
fn quote_phrase(name: &str) -> String {
    let name = one_line(name);
    let name = name.as_str();
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c))
    {
        name.to_string()
    } else {
        header::quoted_string(name)
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

/// Addresses in To:, Cc: and Bcc:, read with mail-parser. A panic there
/// (crafted headers have made it panic before) costs this submission only.
fn header_recipients(raw_headers: &[u8]) -> Vec<String> {
    let parsed = std::panic::catch_unwind(|| {
        let mut found = Vec::new();
        if let Some(message) = mail_parser::MessageParser::new().parse_headers(raw_headers) {
            for list in [message.to(), message.cc(), message.bcc()]
                .into_iter()
                .flatten()
            {
                for address in list.iter() {
                    match (address.address(), address.name()) {
                        (Some(email), _) => found.push(email.to_string()),
                        // `To: root`, `To: root, admin` (cron, mdadm): a
                        // bare local name, qualified by the caller. A
                        // phrase of several words is no address.
                        (None, Some(name)) if is_local_name(name) => found.push(name.to_string()),
                        _ => {}
                    }
                }
            }
        }
        found
    });
    parsed.unwrap_or_default()
}

/// A bare local part such as `root` or `smart-alerts` (RFC 5322 dot-atom).
fn is_local_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('.')
        && !text.ends_with('.')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
}

/// `mailq`, `sendmail -bp`: one entry per message with its id, size, age and
/// sender, then each recipient with its state, attempts and last error.
pub fn list_queue(config: &Config) -> Result<String, SubmitError> {
    let spool = Spool::open_existing(&config.spool_dir)?;
    let ids = spool.list()?;
    let now = unix_now();
    let mut out = String::new();
    if ids.is_empty() {
        out.push_str("Mail queue is empty\n");
        return Ok(out);
    }
    out.push_str("Queue ID            Size    Age     Sender / recipients\n");
    let mut count = 0;
    for id in &ids {
        let envelope = match spool.read_envelope(id) {
            Ok(envelope) => envelope,
            Err(e) => {
                out.push_str(&format!("{id:<19} (unreadable: {e})\n"));
                continue;
            }
        };
        count += 1;
        out.push_str(&format!(
            "{:<19} {:<7} {:<7} <{}>\n",
            envelope.id,
            envelope.size,
            age(now.saturating_sub(envelope.arrival)),
            envelope.sender_text()
        ));
        for r in &envelope.recipients {
            let state = match r.state {
                crate::spool::queue::RecipientState::Queued => "queued",
                crate::spool::queue::RecipientState::Delivered => "delivered",
                crate::spool::queue::RecipientState::Failed => "failed",
            };
            // A push recipient says which service it goes to.
            let via = crate::push::find_route(&config.route, &r.address)
                .map(|route| format!(" via {}", route.transport))
                .unwrap_or_default();
            out.push_str(&format!(
                "                                    <{}>{via} {state}, {} attempt{}",
                r.address,
                r.attempts,
                if r.attempts == 1 { "" } else { "s" }
            ));
            if let Some(error) = &r.last_error {
                out.push_str(&format!(": {}", error.text));
            }
            // The wall clock's idea of the next attempt (the daemon keeps
            // its own schedule on the monotonic clock; see queue.rs).
            if r.state == crate::spool::queue::RecipientState::Queued && r.next_attempt > 0 {
                match r.next_attempt.checked_sub(now) {
                    Some(wait) if wait > 0 => {
                        out.push_str(&format!(" (next attempt in {})", age(wait)))
                    }
                    _ => out.push_str(" (next attempt due now)"),
                }
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "-- {count} message{} in the queue\n",
        if count == 1 { "" } else { "s" }
    ));
    Ok(out)
}

/// `90` -> `1m`, `7200` -> `2h`: the age of a message at a glance.
fn age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Options, String> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse_args(&words)
    }

    #[test]
    fn alert_tool_command_lines() {
        let o = args("-oi -t").unwrap();
        assert!(o.ignore_dots && o.from_headers && o.recipients.is_empty());
        let o = args("-i -f cron@box -F Cron root ops@example.org").unwrap();
        assert_eq!(o.sender.as_deref(), Some("cron@box"));
        assert_eq!(o.full_name.as_deref(), Some("Cron"));
        assert_eq!(o.recipients, ["root", "ops@example.org"]);
        let o = args("-fsmartd@box -odi -oem -v -- -weird").unwrap();
        assert_eq!(o.sender.as_deref(), Some("smartd@box"));
        assert_eq!(o.recipients, ["-weird"]);
        assert_eq!(args("-bp").unwrap().mode, Mode::ListQueue);
        assert_eq!(args("-q").unwrap().mode, Mode::RunQueue);
        assert_eq!(args("-q15m").unwrap().mode, Mode::RunQueue);
        assert_eq!(args("-bs").unwrap().mode, Mode::Smtp);
        assert_eq!(
            args("-B 8BITMIME -N never root").unwrap().recipients,
            ["root"]
        );
        // Grouped flags and attached values, as the tools call it.
        let o = args("-ti").unwrap();
        assert!(o.from_headers && o.ignore_dots);
        let o = args("-FCronDaemon -i -B8BITMIME -oem root").unwrap();
        assert_eq!(o.full_name.as_deref(), Some("CronDaemon"));
        assert!(o.ignore_dots && !o.from_headers);
        assert_eq!(o.recipients, ["root"]);
        let o = args("-itv -odi -fcron@box").unwrap();
        assert!(o.ignore_dots && o.from_headers);
        assert_eq!(o.sender.as_deref(), Some("cron@box"));
        assert_eq!(args("-tz").unwrap_err(), "unknown option -tz");
        assert_eq!(args("-x root").unwrap_err(), "unknown option -x");
        assert_eq!(args("-bd").unwrap_err(), "unsupported mode -bd");
        assert_eq!(args("-f").unwrap_err(), "option -f needs a value");
    }

    #[test]
    fn no_command_line_panics() {
        // Issue 12, item 9a: `-é` cut through the é and panicked.
        assert_eq!(args("-é").unwrap_err(), "unknown option -é");
        assert_eq!(args("-é root").unwrap_err(), "unknown option -é");
        let o = args("-Fé -féé@box -bm -- -é").unwrap();
        assert_eq!(o.full_name.as_deref(), Some("é"));
        assert_eq!(o.sender.as_deref(), Some("éé@box"));
        assert_eq!(o.recipients, ["-é"]);
        assert_eq!(args("-b€").unwrap_err(), "unsupported mode -b€");
        assert_eq!(args("-t€").unwrap_err(), "unknown option -t€");
        assert_eq!(args("-€ -").unwrap_err(), "unknown option -€");
        assert_eq!(args("- root").unwrap().recipients, ["-", "root"]);
        let odd = [
            "",
            "-",
            "--",
            "---",
            "-\u{0}",
            "-\u{10ffff}x",
            "-F",
            "-C",
            "\u{85}",
        ];
        for word in odd {
            let _ = parse_args(&[word.to_string()]);
            let _ = parse_args(&[word.to_string(), word.to_string()]);
        }
    }

    #[test]
    fn a_long_subject_is_encoded_words_of_at_most_75_characters() {
        let subject = "Température du disque élevée ".repeat(5);
        let encoded = encode_header_text(&subject);
        let mut decoded = Vec::new();
        for word in encoded.split("\n ") {
            assert!(word.len() <= 75, "{word}");
            let inner = word
                .strip_prefix("=?UTF-8?B?")
                .unwrap()
                .strip_suffix("?=")
                .unwrap();
            decoded.extend(crate::base64::decode(inner).unwrap());
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), subject);
        assert_eq!(encode_header_text("plain"), "plain");
    }

    #[test]
    fn addresses_without_a_domain_in_headers_get_one() {
        for (field, expected) in [
            ("To: root\r\n", "To: root@box.lan\r\n"),
            ("To: root, admin\r\n", "To: root@box.lan, admin@box.lan\r\n"),
            (
                "From: root (Cron Daemon)\r\n",
                "From: root@box.lan (Cron Daemon)\r\n",
            ),
            (
                "From: mdadm monitoring <root>\r\n",
                "From: mdadm monitoring <root@box.lan>\r\n",
            ),
            ("To: \"Cron\" <root>\r\n", "To: \"Cron\" <root@box.lan>\r\n"),
            ("To: a@b.example\r\n", "To: a@b.example\r\n"),
            ("To: <a@b.example>\r\n", "To: <a@b.example>\r\n"),
            ("To: Joe Bloggs\r\n", "To: Joe Bloggs\r\n"),
            (
                "To: undisclosed-recipients:;\r\n",
                "To: undisclosed-recipients:;\r\n",
            ),
            (
                "Cc: \"Doe, John\" <jd>, root\r\n",
                "Cc: \"Doe, John\" <jd@box.lan>, root@box.lan\r\n",
            ),
            (
                "To: root,\r\n\tadmin\r\n",
                "To: root@box.lan,\r\n\tadmin@box.lan\r\n",
            ),
            (
                "From: root (a (nested) comment)\r\n",
                "From: root@box.lan (a (nested) comment)\r\n",
            ),
            (
                "Reply-To: \"x\\\" y\" <ops>\r\n",
                "Reply-To: \"x\\\" y\" <ops@box.lan>\r\n",
            ),
        ] {
            assert_eq!(qualify_header(field, "box.lan"), expected, "{field:?}");
        }
    }

    #[test]
    fn bare_local_names_in_to_and_cc_are_recipients() {
        let found = header_recipients(
            b"To: root, admin\r\nCc: \"Cron\" <ops>, Joe Bloggs, a@b.example\r\n\
              Bcc: undisclosed-recipients:;\r\n",
        );
        assert_eq!(found, ["root", "admin", "ops", "a@b.example"]);
    }

    #[test]
    fn phrases_are_quoted_when_needed() {
        assert_eq!(quote_phrase("Cron Daemon"), "Cron Daemon");
        assert_eq!(quote_phrase("Doe, John"), "\"Doe, John\"");
        // No name adds a header line.
        assert_eq!(
            quote_phrase("Eve\nReply-To: attacker@evil.test"),
            "\"Eve Reply-To: attacker@evil.test\""
        );
        assert_eq!(quote_phrase("a\r\n\tb"), "a   b");
    }
}
