//! The README's recipes (issue 13 item 9): each config in "Forward root's
//! mail to my mailbox" passes `tinymta -t` as it is written there, with
//! only its files (/etc/tinymta/...) moved to a test directory.

mod support;

use std::os::unix::fs::PermissionsExt;

/// The text of the README section headed `heading`, up to the next `## `.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &readme[start + 1 + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The fenced blocks of `text` whose info string is `info` (`conf`, or ""
/// for a plain block), each with the `### ` heading it stands under.
fn blocks(text: &str, info: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut heading = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("### ") {
            heading = name.to_string();
        } else if let Some(tag) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            if tag == info {
                found.push((heading.clone(), body.join("\n") + "\n"));
            }
        }
    }
    found
}

#[test]
fn readme_recipes_pass_the_config_check() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let recipes_text = section(&readme, "## Forward root's mail to my mailbox");
    let aliases = blocks(recipes_text, "");
    assert_eq!(aliases.len(), 1, "the aliases file: {aliases:?}");
    assert_eq!(aliases[0].1, "root: owner@example.com\n");
    let recipes = blocks(recipes_text, "conf");
    let names: Vec<&str> = recipes.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Gmail",
            "Fastmail",
            "Microsoft 365",
            "A relay on the LAN with a self-signed certificate",
            "Straight to the recipient's MX hosts"
        ]
    );
    for (name, recipe) in &recipes {
        passes_config_check(
            name,
            recipe,
            &[
                ("aliases", aliases[0].1.as_str()),
                ("password", "the-app-password\n"),
            ],
        );
    }
}

#[test]
fn readme_push_recipes_pass_the_config_check() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let recipes_text = section(&readme, "## Push notifications");
    let aliases = blocks(recipes_text, "");
    assert_eq!(aliases[1].1, "root: owner@example.com, phone@push\n");
    let recipes = blocks(recipes_text, "conf");
    let names: Vec<&str> = recipes.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ntfy",
            "Telegram",
            "A NAS on the LAN that can only send mail"
        ]
    );
    for (name, recipe) in &recipes {
        // listen on the LAN address is the recipe's; the test's is loopback.
        let recipe = recipe.replace("listen = 192.168.1.2:25", "listen = 127.0.0.1:25");
        passes_config_check(
            name,
            &recipe,
            &[
                ("aliases", aliases[1].1.as_str()),
                ("ntfy-token", "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2\n"),
                (
                    "telegram-token",
                    "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\n",
                ),
                ("discord-url", "https://discord.com/api/webhooks/1/abc\n"),
            ],
        );
    }
}

/// `recipe` passes `tinymta -t` as it is written, with its files
/// (/etc/tinymta/NAME, written mode 600 from `files`) moved to a test
/// directory; where the queue lives and who runs it are the test's (no
/// recipe sets them).
fn passes_config_check(name: &str, recipe: &str, files: &[(&str, &str)]) {
    let dir = support::test_dir();
    let dir_text = format!("{}/", dir.path().display());
    for (file, text) in files {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = format!(
        "{}spool_dir = {dir_text}spool\nmailbox_dir = {dir_text}mail\n{}",
        recipe.replace("/etc/tinymta/", &dir_text),
        if support::running_as_root() {
            "user = nobody\n"
        } else {
            ""
        },
    );
    for line in recipe.lines() {
        let key = line.split('=').next().unwrap().trim();
        assert!(
            !["spool_dir", "mailbox_dir", "user"].contains(&key),
            "{name}: the test sets {key}"
        );
    }
    let path = dir.path().join("tinymta.conf");
    std::fs::write(&path, &config).unwrap();
    let (code, out, err) = support::run_tinymta(&["-t".as_ref(), "-c".as_ref(), path.as_os_str()]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (Some(0), "config ok\n", ""),
        "{name}:\n{config}"
    );
}
