//! The packages and release archives, as far as this machine can check
//! them without an OpenWrt or Buildroot tree: the scripts parse (`sh -n`,
//! `busybox sh -n`), the procd init script registers exactly what it
//! should with procd (stubs of rc.common and procd.sh under busybox sh),
//! the package files name the project's version and license and files that
//! exist, their configs load, and `cross/dist/archive` writes exactly the
//! files it should, with sums that check.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's top directory.
fn top() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(top().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `command`: (exit code, stdout, stderr).
fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let out = command.output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OPENWRT_MAKEFILE: &str = "cross/openwrt/tinymta/Makefile";
const OPENWRT_INIT: &str = "cross/openwrt/tinymta/files/tinymta.init";
const OPENWRT_CONFIG: &str = "cross/openwrt/tinymta/files/tinymta.conf";
const BUILDROOT_MK: &str = "cross/buildroot/package/tinymta/tinymta.mk";
const BUILDROOT_CONFIG: &str = "cross/buildroot/package/tinymta/tinymta.conf";

#[test]
fn every_shipped_script_parses_in_sh_and_busybox_sh() {
    let scripts = [
        "etc/init.d/S50tinymta",
        OPENWRT_INIT,
        "cross/dist/archive",
        "tests/packaging/rc.common",
        "tests/packaging/procd.sh",
    ];
    for script in scripts {
        let path = top().join(script);
        for shell in [vec!["sh"], vec!["busybox", "sh"]] {
            let result = run(Command::new(shell[0])
                .args(&shell[1..])
                .arg("-n")
                .arg(&path));
            assert_eq!(
                result,
                (Some(0), String::new(), String::new()),
                "{shell:?} -n {script}"
            );
        }
    }
}

/// The procd init script, installed as /etc/init.d/tinymta, run with
/// `action` through the stub rc.common under busybox sh; `config_error`
/// is what the stand-in for `tinymta -t` says (nothing: the config is
/// good). (exit code, stdout, stderr, the calls recorded, the stand-in).
fn run_procd_script(
    action: &str,
    config_error: &str,
) -> (Option<i32>, String, String, String, PathBuf) {
    let dir = support::test_dir();
    let init = dir.path().join("etc/init.d/tinymta");
    fs::create_dir_all(init.parent().unwrap()).unwrap();
    fs::copy(top().join(OPENWRT_INIT), &init).unwrap();
    let record = dir.path().join("record");
    let stand_in = dir.path().join("tinymta");
    fs::write(
        &stand_in,
        "#!/bin/sh\n\
         line=tinymta; for arg in \"$@\"; do line=\"$line <$arg>\"; done\n\
         echo \"$line\" >> \"$STUB_RECORD\"\n\
         if [ -n \"$STUB_CONFIG_ERROR\" ]; then echo \"$STUB_CONFIG_ERROR\" >&2; exit 1; fi\n\
         echo 'config ok'\n",
    )
    .unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err) = run(Command::new("busybox")
        .arg("sh")
        .arg(top().join("tests/packaging/rc.common"))
        .arg(&init)
        .arg(action)
        .env("STUB_RECORD", &record)
        .env("STUB_TINYMTA", &stand_in)
        .env("STUB_CONFIG_ERROR", config_error));
    let recorded = fs::read_to_string(&record).unwrap_or_default();
    (code, out, err, recorded, stand_in)
}

const SETTINGS: &str = "settings <USE_PROCD=1> <START=45> <STOP=55> <PROG=/usr/sbin/tinymta> \
                        <CONFIG=/etc/tinymta.conf>\n";

/// What a start records up to the config check, by the script installed
/// beside `stand_in` (etc/init.d/tinymta).
fn checked_at_start(stand_in: &Path) -> String {
    let init = stand_in.parent().unwrap().join("etc/init.d/tinymta");
    format!(
        "{SETTINGS}procd_open_service <tinymta> <{}>\n\
         tinymta <-t> <-c> </etc/tinymta.conf>\n",
        init.display()
    )
}

#[test]
fn the_procd_script_checks_the_config_and_registers_tinymta_in_the_foreground_with_respawn() {
    let (code, out, err, recorded, stand_in) = run_procd_script("start", "");
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    assert_eq!(
        recorded,
        format!(
            "{}procd_open_instance\n\
             procd_set_param <command> <{}> <-c> </etc/tinymta.conf>\n\
             procd_set_param <respawn> <3600> <5> <5>\n\
             procd_set_param <term_timeout> <15>\n\
             procd_set_param <stderr> <1>\n\
             procd_close_instance\n\
             procd_close_service\n",
            checked_at_start(&stand_in),
            stand_in.display()
        )
    );
}

#[test]
fn the_procd_script_says_a_broken_config_and_registers_no_instance() {
    let error = "tinymta: /etc/tinymta.conf:7: spool_dir: no value";
    let (code, out, err, recorded, stand_in) = run_procd_script("start", error);
    // rc.common's start ends with procd_close_service, whose status it is.
    assert_eq!(
        (code, out, err),
        (Some(0), String::new(), format!("{error}\n"))
    );
    assert_eq!(
        recorded,
        format!("{}procd_close_service\n", checked_at_start(&stand_in))
    );
}

#[test]
fn the_procd_script_reloads_with_sighup_to_every_instance() {
    let (code, out, err, recorded, _) = run_procd_script("reload", "");
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    // procd.sh sends the number `kill -l HUP` gives: 1.
    assert_eq!(
        recorded,
        format!("{SETTINGS}procd_send_signal <tinymta> <*> <1>\n")
    );
}

/// The value of `key` in a Makefile line `KEY<separator>VALUE`.
fn make_variable(text: &str, key: &str, separator: &str) -> String {
    let prefix = format!("{key}{separator}");
    let values: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(values.len(), 1, "{key} set once: {values:?}");
    values[0].trim().to_string()
}

/// `key = "VALUE"` of Cargo.toml's package: VALUE.
fn cargo_value(key: &str) -> String {
    let value = make_variable(&read("Cargo.toml"), key, " = ");
    value.trim_matches('"').to_string()
}

#[test]
fn the_packages_name_the_version_and_license_of_cargo_toml() {
    let (version, license) = (cargo_value("version"), cargo_value("license"));
    let openwrt = read(OPENWRT_MAKEFILE);
    let buildroot = read(BUILDROOT_MK);
    assert_eq!(
        [
            make_variable(&openwrt, "PKG_VERSION", ":="),
            make_variable(&buildroot, "TINYMTA_VERSION", " = "),
        ],
        [version.clone(), version]
    );
    assert_eq!(
        [
            make_variable(&openwrt, "PKG_LICENSE", ":="),
            make_variable(&buildroot, "TINYMTA_LICENSE", " = "),
        ],
        [license.clone(), license]
    );
}

/// The paths after `prefix` in `text` (up to white space or `)`... end).
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    text.split(prefix)
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| c.is_whitespace() || c == '\\')
                .next()
                .unwrap()
                .trim_start_matches('/')
                .to_string()
        })
        .collect()
}

#[test]
fn the_packages_take_files_that_exist_from_the_repository() {
    // The OpenWrt package is cross/openwrt/tinymta; its source the top.
    let openwrt = read(OPENWRT_MAKEFILE);
    assert_eq!(
        make_variable(&openwrt, "TINYMTA_SOURCE", ":="),
        "$(CURDIR)/../../.."
    );
    let package = top().join("cross/openwrt/tinymta");
    assert_eq!(package.join("../../..").canonicalize().unwrap(), top());
    let sources = paths_after(&openwrt, "$(TINYMTA_SOURCE)/");
    assert_eq!(sources, ["Cargo.toml", "Cargo.lock", "build.rs", "src"]);
    let files = paths_after(&openwrt, "./files/");
    assert_eq!(files, ["tinymta.conf", "tinymta.init"]);
    for file in &files {
        assert!(package.join("files").join(file).is_file(), "{file}");
    }
    // Buildroot: the external tree is cross/buildroot; the source the top.
    let buildroot = read(BUILDROOT_MK);
    assert_eq!(
        make_variable(&buildroot, "TINYMTA_SITE", " = "),
        "$(BR2_EXTERNAL_TINYMTA_PATH)/../.."
    );
    assert_eq!(
        top().join("cross/buildroot/../..").canonicalize().unwrap(),
        top()
    );
    assert_eq!(paths_after(&buildroot, "$(@D)/etc/"), ["init.d/S50tinymta"]);
    assert!(top().join("etc/init.d/S50tinymta").is_file());
    assert_eq!(
        paths_after(&buildroot, "$(TINYMTA_PKGDIR)/"),
        ["tinymta.conf"]
    );
    assert!(top().join(BUILDROOT_CONFIG).is_file());
    assert!(read("cross/buildroot/Config.in").contains("package/tinymta/Config.in"));
    assert!(read("cross/buildroot/package/tinymta/Config.in")
        .starts_with("config BR2_PACKAGE_TINYMTA\n"));
}

#[test]
fn the_packages_link_sendmail_mailq_and_mail_to_the_binary_in_usr_sbin() {
    // OpenWrt: opkg alternatives, PRIORITY:LINK:TARGET.
    let openwrt: Vec<String> = read(OPENWRT_MAKEFILE)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("200:"))
        .map(|alternative| alternative.trim_end_matches(" \\").to_string())
        .collect();
    // Buildroot: ln -sf TARGET LINK, relative to the link's directory.
    let buildroot: Vec<String> = read(BUILDROOT_MK)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ln -sf "))
        .map(|link| {
            let (target, path) = link.split_once(' ').unwrap();
            let path = path.trim_start_matches("$(TARGET_DIR)");
            let dir = Path::new(path).parent().unwrap();
            let resolved = Path::new("/").join(dir.join(target).strip_prefix("/").unwrap());
            format!("{path}:{}", normalized(&resolved))
        })
        .collect();
    let links = [
        "/usr/sbin/sendmail:/usr/sbin/tinymta",
        "/usr/lib/sendmail:/usr/sbin/tinymta",
        "/usr/bin/mailq:/usr/sbin/tinymta",
        "/usr/bin/mail:/usr/sbin/tinymta",
    ];
    assert_eq!(openwrt, links);
    assert_eq!(buildroot, links);
}

/// `path` with its `..` taken away, as the kernel follows a link.
fn normalized(path: &Path) -> String {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(name) => parts.push(name),
            _ => {}
        }
    }
    let joined: PathBuf = parts.iter().collect();
    format!("/{}", joined.display())
}

#[test]
fn the_package_configs_load_and_keep_the_queue_out_of_ram() {
    for path in [OPENWRT_CONFIG, BUILDROOT_CONFIG] {
        let config = tinymta::config::Config::parse(&read(path), Path::new(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(config.spool_dir, Path::new("/etc/tinymta/spool"), "{path}");
        assert_eq!(
            config.pid_file.as_deref(),
            Some(Path::new("/var/run/tinymta.pid"))
        );
        assert_eq!(config.user, "tinymta");
    }
}

/// The entries `tar -tv` lists in `archive`: mode, owner, date and time
/// (UTC), name. (The sizes are checked on the unpacked files.)
fn archive_listing(archive: &Path) -> Vec<String> {
    let (code, out, err) = run(Command::new("tar")
        .arg("-tzvf")
        .arg(archive)
        .env("TZ", "UTC"));
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // mode owner/group size date time name
            [fields[0], fields[1], fields[3], fields[4], fields[5]].join(" ")
        })
        .collect()
}

#[test]
fn the_release_archive_holds_the_binary_config_init_scripts_install_text_and_sums() {
    let dir = support::test_dir();
    // A stand-in for the binary: the archive script copies, never runs it.
    let binary = dir.path().join("tinymta");
    fs::write(&binary, b"\x7fELF not really\n").unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
    let out_dir = dir.path().join("dist");
    let archive_script = top().join("cross/dist/archive");
    let target = "armv7-unknown-linux-musleabihf";
    let write = || {
        run(Command::new(&archive_script)
            .args([target])
            .arg(&binary)
            .arg(&out_dir)
            .env("SOURCE_DATE_EPOCH", "1700000000"))
    };
    let version = cargo_value("version");
    let name = format!("tinymta-{version}-{target}");
    let archive = out_dir.join(format!("{name}.tar.gz"));
    assert_eq!(
        write(),
        (Some(0), format!("{}\n", archive.display()), String::new())
    );
    let first = fs::read(&archive).unwrap();
    let listed = |mode: &str, path: &str| format!("{mode} 0/0 2023-11-14 22:13 {name}/{path}");
    assert_eq!(
        archive_listing(&archive),
        [
            listed("drwxr-xr-x", ""),
            listed("-rw-r--r--", "INSTALL"),
            listed("-rw-r--r--", "SHA256SUMS"),
            listed("drwxr-xr-x", "init.d/"),
            listed("-rwxr-xr-x", "init.d/S50tinymta"),
            listed("-rw-r--r--", "inittab"),
            listed("drwxr-xr-x", "openwrt/"),
            listed("-rwxr-xr-x", "openwrt/tinymta"),
            listed("-rwxr-xr-x", "tinymta"),
            listed("-rw-r--r--", "tinymta.conf"),
        ]
    );
    // Unpacked: each file is its source, byte for byte, and the sums check.
    let unpacked = dir.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let (code, _, err) = run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    assert_eq!(code, Some(0), "{err}");
    let root = unpacked.join(&name);
    for (file, source) in [
        ("tinymta", binary.clone()),
        ("tinymta.conf", top().join("etc/tinymta.conf")),
        ("init.d/S50tinymta", top().join("etc/init.d/S50tinymta")),
        ("inittab", top().join("etc/inittab")),
        ("openwrt/tinymta", top().join(OPENWRT_INIT)),
    ] {
        assert_eq!(
            fs::read(root.join(file)).unwrap(),
            fs::read(&source).unwrap(),
            "{file}"
        );
    }
    let install = fs::read_to_string(root.join("INSTALL")).unwrap();
    assert_eq!(
        install,
        read("cross/dist/INSTALL")
            .replace("@VERSION@", &version)
            .replace("@TARGET@", target)
    );
    assert!(install.starts_with(&format!("tinymta {version} for {target}\n")));
    let (code, out, err) = run(Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&root));
    assert_eq!(
        (code, out, err),
        (
            Some(0),
            "tinymta: OK\ntinymta.conf: OK\ninit.d/S50tinymta: OK\ninittab: OK\n\
             openwrt/tinymta: OK\nINSTALL: OK\n"
                .to_string(),
            String::new()
        )
    );
    // The same inputs give the same archive, byte for byte.
    assert_eq!(write().0, Some(0));
    assert_eq!(fs::read(&archive).unwrap(), first);
    // No binary, no archive.
    let missing = dir.path().join("missing");
    let (code, out, err) = run(Command::new(&archive_script)
        .args([target])
        .arg(&missing)
        .arg(&out_dir));
    assert_eq!(
        (code, out, err),
        (
            Some(66),
            String::new(),
            format!(
                "{}: {}: no executable file\n",
                archive_script.display(),
                missing.display()
            )
        )
    );
}
