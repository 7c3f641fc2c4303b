//! The aliases file, in the format of /etc/aliases (aliases(5)):
//! `name: target, target` lines, `#` comments, and continuation lines that
//! start with white space. A target is an address, or a local name that may
//! be an alias itself. A `*` line catches every local name without a line of
//! its own. This is how `root@router` reaches `ops@example.org`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::line_error::LineError;
use crate::smtp::address::{parse_mailbox, Mailbox};

/// How deep aliases may point to aliases.
const MAX_DEPTH: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    /// Lower-case name -> its targets as written.
    table: HashMap<String, Vec<String>>,
}

/// Where an alias leads: a local mailbox name, or an address elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local(String),
    Address(String),
}

impl Aliases {
    pub fn load(path: &Path) -> Result<Aliases, LineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LineError::new(0, e.to_string()).in_file(path))?;
        Aliases::parse(&text).map_err(|e| e.in_file(path))
    }

    pub fn parse(text: &str) -> Result<Aliases, LineError> {
        let mut table: HashMap<String, Vec<String>> = HashMap::new();
        let mut current: Option<(String, usize)> = None;
        let mut entries: Vec<(String, usize, String)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            if raw.trim_start().starts_with('#') || raw.trim().is_empty() {
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                // A continuation of the line before.
                match entries.last_mut() {
                    Some((_, _, targets)) if current.is_some() => {
                        targets.push(',');
                        targets.push_str(raw.trim());
                    }
                    _ => {
                        return Err(LineError::new(
                            line_no,
                            "continuation line without an alias",
                        ))
                    }
                }
                continue;
            }
            let (name, targets) = raw
                .split_once(':')
                .ok_or_else(|| LineError::new(line_no, "expected `name: target, ...`"))?;
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(LineError::new(line_no, format!("bad alias name {name:?}")));
            }
            current = Some((name.clone(), line_no));
            entries.push((name, line_no, targets.trim().to_string()));
        }
        for (name, line_no, targets) in entries {
            let list: Vec<String> = targets
                .split(',')
                .map(|t| t.trim().trim_matches(['<', '>']).to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if list.is_empty() {
                return Err(LineError::new(
                    line_no,
                    format!("alias {name:?} has no target"),
                ));
            }
            if let Some(target) = list.iter().find(|t| t.starts_with(['|', '/', ':'])) {
                return Err(LineError::new(
                    line_no,
                    format!("{target:?}: only addresses and local names are supported"),
                ));
            }
            if table.insert(name.clone(), list).is_some() {
                return Err(LineError::new(
                    line_no,
                    format!("alias {name:?} given twice"),
                ));
            }
        }
        Ok(Aliases { table })
    }

    /// Where mail for the local name `name` goes. An alias naming itself
    /// (`admin: admin, ...`) means its own mailbox too; one leading back to
    /// an alias already being expanded adds nothing (sendmail's rule); past
    /// the depth limit the name is delivered where it stands. If a loop
    /// leaves nothing at all, the mail goes to `name`'s own mailbox: it is
    /// never lost. `is_local` says whether a domain is one of ours.
    pub fn expand(&self, name: &str, is_local: &dyn Fn(&str) -> bool) -> Vec<Target> {
        let name = name.to_ascii_lowercase();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let mut expanded = HashMap::new();
        self.expand_into(&name, is_local, 0, &mut seen, &mut expanded, &mut out);
        if out.is_empty() {
            out.push(Target::Local(name));
        }
        out
    }

    fn expand_into(
        &self,
        name: &str,
        is_local: &dyn Fn(&str) -> bool,
        depth: usize,
        seen: &mut Vec<String>,
        expanded: &mut HashMap<String, usize>,
        out: &mut Vec<Target>,
    ) {
        let push = |out: &mut Vec<Target>, target: Target| {
            if !out.contains(&target) {
                out.push(target);
            }
        };
        if seen.iter().any(|s| s == name) {
            return;
        }
        if depth >= MAX_DEPTH {
            push(out, Target::Local(name.to_string()));
            return;
        }
        let targets = match (self.table.get(name), self.table.get("*")) {
            (Some(targets), _) => targets,
            // The catch-all, but not for a name it leads to itself.
            (None, Some(targets)) if depth == 0 => targets,
            _ => {
                push(out, Target::Local(name.to_string()));
                return;
            }
        };
        // A name reached again by another path adds nothing new, unless it is
        // now nearer the top (the depth limit cut it short before). Without
        // this, `a: b, b, ...` chains make the walk exponential in the depth.
        if expanded.get(name).is_some_and(|&at| at <= depth) {
            return;
        }
        expanded.insert(name.to_string(), depth);
        seen.push(name.to_string());
        for target in targets {
            let local = match target.rsplit_once('@') {
                Some((local, domain)) if !is_local(domain) => {
                    push(
                        out,
                        Target::Address(format!("{local}@{}", domain.to_ascii_lowercase())),
                    );
                    continue;
                }
                Some((local, _)) => local.to_ascii_lowercase(),
                None => target.to_ascii_lowercase(),
            };
            if local == name {
                push(out, Target::Local(local));
            } else {
                self.expand_into(&local, is_local, depth + 1, seen, expanded, out);
            }
        }
        seen.pop();
    }
}

/// The table of the `aliases` file the config names, if it names one; an
/// error names the config's `aliases` line.
pub fn load_configured(config: &Config) -> Result<Option<Arc<Aliases>>, ConfigError> {
    match &config.aliases {
        None => Ok(None),
        Some(path) => Aliases::load(path)
            .map(|table| Some(Arc::new(table)))
            .map_err(|e| config.error_at("aliases", &e.to_string())),
    }
}

/// Adds a recipient to an envelope's list as every producer of mail does:
/// one at a local domain or at `qualify_domain` through the aliases, and
/// each mailbox once. `root` of a box that only forwards is `root@box`,
/// and its alias applies although `box` is no local domain (as Postfix's
/// myorigin is in its mydestination by default).
pub fn add_recipient(
    config: &Config,
    aliases: Option<&Aliases>,
    recipients: &mut Vec<Mailbox>,
    recipient: Mailbox,
) {
    let aliased = config.is_local_domain(&recipient.domain)
        || recipient
            .domain
            .eq_ignore_ascii_case(&config.qualify_domain);
    let expanded = match aliases {
        Some(aliases) if aliased => expand_alias(aliases, &recipient, config),
        _ => vec![recipient],
    };
    for mailbox in expanded {
        if !recipients.contains(&mailbox) {
            recipients.push(mailbox);
        }
    }
}

/// The mailboxes a local recipient stands for, through the aliases. Local
/// names keep the recipient's domain.
fn expand_alias(aliases: &Aliases, recipient: &Mailbox, config: &Config) -> Vec<Mailbox> {
    let name = recipient.local_unquoted().to_ascii_lowercase();
    let mut out = Vec::new();
    for target in aliases.expand(&name, &|domain| config.is_local_domain(domain)) {
        let mailbox = match target {
            Target::Local(local) => Mailbox {
                local,
                domain: recipient.domain.clone(),
            },
            Target::Address(address) => match parse_mailbox(&address) {
                Ok(mailbox) => mailbox,
                Err(e) => {
                    log::warn!("alias target {address:?} of {name}: {e}");
                    continue;
                }
            },
        };
        if mailbox.mailbox_name().is_none() && config.is_local_domain(&mailbox.domain) {
            log::warn!("alias target {mailbox} of {name} is no usable mailbox name");
            continue;
        }
        if !out.contains(&mailbox) {
            out.push(mailbox);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reached_by_many_paths_are_expanded_once() {
        // Twelve levels of ten names, each naming all ten of the next level:
        // 10^10 paths, 120 names. The depth limit (10) stops at level 10.
        let mut text = String::new();
        for level in 0..12 {
            for n in 0..10 {
                let next: Vec<String> = (0..10).map(|m| format!("l{}n{m}", level + 1)).collect();
                text.push_str(&format!("l{level}n{n}: {}\n", next.join(", ")));
            }
        }
        let aliases = Aliases::parse(&text).unwrap();
        let mut got = aliases.expand("l0n0", &|_: &str| false);
        got.sort_by_key(|t| format!("{t:?}"));
        let want: Vec<Target> = (0..10).map(|m| Target::Local(format!("l10n{m}"))).collect();
        assert_eq!(got, want);
    }

    fn local(domain: &str) -> bool {
        domain.eq_ignore_ascii_case("router.lan")
    }

    fn expand(aliases: &Aliases, name: &str) -> Vec<Target> {
        aliases.expand(name, &local)
    }

    #[test]
    fn names_addresses_and_continuations() {
        let a = Aliases::parse(
            "# system\nroot: admin, Ops@Example.ORG\nadmin: alice,\n  bob@router.lan\n\
             postmaster: root\nMAILER-DAEMON: postmaster\n",
        )
        .unwrap();
        assert_eq!(
            expand(&a, "Root"),
            vec![
                Target::Local("alice".into()),
                Target::Local("bob".into()),
                Target::Address("Ops@example.org".into())
            ]
        );
        assert_eq!(expand(&a, "mailer-daemon").len(), 3);
        assert_eq!(expand(&a, "carol"), vec![Target::Local("carol".into())]);
    }

    #[test]
    fn loops_and_depth_end_in_a_mailbox() {
        let a =
            Aliases::parse("a: b\nb: a, x@far.test\nself: self, y@far.test\np: q\nq: p\n").unwrap();
        // b leads back to a, which is being expanded: nothing more from there.
        assert_eq!(expand(&a, "a"), vec![Target::Address("x@far.test".into())]);
        // A loop that leads nowhere else still delivers, to the name asked for.
        assert_eq!(expand(&a, "p"), vec![Target::Local("p".into())]);
        assert_eq!(
            expand(&a, "self"),
            vec![
                Target::Local("self".into()),
                Target::Address("y@far.test".into())
            ]
        );
        let chain: String = (0..20).map(|n| format!("n{n}: n{}\n", n + 1)).collect();
        let a = Aliases::parse(&chain).unwrap();
        assert_eq!(expand(&a, "n0"), vec![Target::Local("n10".into())]);
    }

    #[test]
    fn the_catch_all() {
        let a = Aliases::parse("root: ops@far.test\n*: catch\n").unwrap();
        assert_eq!(
            expand(&a, "root"),
            vec![Target::Address("ops@far.test".into())]
        );
        assert_eq!(expand(&a, "anyone"), vec![Target::Local("catch".into())]);
        assert_eq!(expand(&a, "catch"), vec![Target::Local("catch".into())]);
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        let missing = Aliases::load(&path).unwrap_err().to_string();
        assert!(
            missing.starts_with(&format!("{}: ", path.display())) && missing.contains("os error"),
            "{missing}"
        );
        std::fs::write(&path, "ok: a\nnot an alias\n").unwrap();
        assert_eq!(
            Aliases::load(&path).unwrap_err().to_string(),
            format!("{}:2: expected `name: target, ...`", path.display())
        );
    }

    #[test]
    fn errors_name_their_line() {
        assert_eq!(Aliases::parse("ok: a\nnot an alias\n").unwrap_err().line, 2);
        assert_eq!(Aliases::parse("  orphan\n").unwrap_err().line, 1);
        assert_eq!(Aliases::parse("a: b\na: c\n").unwrap_err().line, 2);
        assert_eq!(Aliases::parse("x:\n").unwrap_err().line, 1);
        assert!(Aliases::parse("a: |/bin/sh\n")
            .unwrap_err()
            .message
            .contains("only addresses"));
    }
}
