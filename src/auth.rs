//! SMTP AUTH on the server side (RFC 4954): the users file and password
//! checks. Each line of `auth_users` is `name:$pbkdf2-sha256$ITERATIONS$SALT$HASH`
//! (salt and hash in hex), as `tinymta passwd NAME` prints it. Passwords are
//! checked with ring's PBKDF2-HMAC-SHA256 in constant time.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;

use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

use crate::line_error::LineError;

const SCHEME: &str = "pbkdf2-sha256";
/// What `tinymta passwd` uses. Each hash states its own count, so it can be
/// raised later without breaking existing lines.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// The users who may authenticate.
#[derive(Debug, Default, Clone)]
pub struct Users {
    users: HashMap<String, PasswordHash>,
    /// Checked for unknown names, so that they take as long as known ones.
    decoy: Option<PasswordHash>,
}

impl Users {
    pub fn load(path: &Path) -> Result<Users, LineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LineError::new(0, e.to_string()).in_file(path))?;
        Users::parse(&text).map_err(|e| e.in_file(path))
    }

    pub fn parse(text: &str) -> Result<Users, LineError> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: &str| LineError::new(line_no, message);
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| error("expected name:hash"))?;
            if name.is_empty() {
                return Err(error("empty user name"));
            }
            let hash = parse_hash(hash).ok_or_else(|| {
                error("expected $pbkdf2-sha256$ITERATIONS$SALT$HASH (see tinymta passwd)")
            })?;
            if users.insert(name.to_string(), hash).is_some() {
                return Err(error(&format!("user {name:?} given twice")));
            }
        }
        let decoy = users.values().next().cloned();
        Ok(Users { users, decoy })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is `name`'s. Takes the same time for an unknown name.
    pub fn check(&self, name: &str, password: &[u8]) -> bool {
        match (self.users.get(name), &self.decoy) {
            (Some(hash), _) => verify(hash, password),
            (None, Some(decoy)) => {
                let _ = verify(decoy, password);
                false
            }
            (None, None) => false,
        }
    }
}

fn verify(hash: &PasswordHash, password: &[u8]) -> bool {
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        hash.iterations,
        &hash.salt,
        password,
        &hash.hash,
    )
    .is_ok()
}

fn parse_hash(text: &str) -> Option<PasswordHash> {
    let mut parts = text.strip_prefix('$')?.split('$');
    if parts.next()? != SCHEME {
        return None;
    }
    let iterations = NonZeroU32::new(parts.next()?.parse().ok()?)?;
    let salt = from_hex(parts.next()?)?;
    let hash = from_hex(parts.next()?)?;
    if parts.next().is_some() || salt.is_empty() || hash.len() != HASH_LEN {
        return None;
    }
    Some(PasswordHash {
        iterations,
        salt,
        hash,
    })
}

/// A users-file line for `name` and `password`, with a fresh random salt.
pub fn hash_line(name: &str, password: &[u8], iterations: u32) -> String {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .expect("the system random source failed");
    let mut hash = [0u8; HASH_LEN];
    let iterations = NonZeroU32::new(iterations.max(1)).expect("at least 1");
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password,
        &mut hash,
    );
    format!(
        "{name}:${SCHEME}${iterations}${}${}",
        to_hex(&salt),
        to_hex(&hash)
    )
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_lines_verify_and_salts_differ() {
        let line = hash_line("box", b"s3cret", 1000);
        let again = hash_line("box", b"s3cret", 1000);
        assert_ne!(line, again);
        assert!(line.starts_with("box:$pbkdf2-sha256$1000$"));
        let users = Users::parse(&format!("# users\n{line}\n\nother:{}\n", &again[4..])).unwrap();
        assert!(users.check("box", b"s3cret"));
        assert!(!users.check("box", b"s3cret "));
        assert!(users.check("other", b"s3cret"));
        assert!(!users.check("nobody", b"s3cret"));
        assert!(!Users::default().check("box", b"s3cret"));
    }

    #[test]
    fn known_hash() {
        // PBKDF2-HMAC-SHA256("password", "salt", 1) from RFC 7914 11's companion vectors.
        let users = Users::parse(
            "u:$pbkdf2-sha256$1$73616c74$120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
        )
        .unwrap();
        assert!(users.check("u", b"password"));
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(Users::parse("a:b\n").unwrap_err().line, 1);
        assert_eq!(Users::parse("\n\nnocolon\n").unwrap_err().line, 3);
        let line = hash_line("a", b"x", 1);
        assert_eq!(
            Users::parse(&format!("{line}\n{line}\n"))
                .unwrap_err()
                .message,
            "user \"a\" given twice"
        );
        assert!(Users::parse("a:$pbkdf2-sha256$0$00$00").is_err());
        assert!(Users::parse("a:$md5$1$00$00").is_err());
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let missing = Users::load(&path).unwrap_err().to_string();
        assert!(
            missing.starts_with(&format!("{}: ", path.display())) && missing.contains("os error"),
            "{missing}"
        );
        std::fs::write(&path, "# users\nbox:plaintext\n").unwrap();
        assert_eq!(
            Users::load(&path).unwrap_err().to_string(),
            format!(
                "{}:2: expected $pbkdf2-sha256$ITERATIONS$SALT$HASH (see tinymta passwd)",
                path.display()
            )
        );
    }
}
