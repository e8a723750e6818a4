//! Password hashing and verification, and htpasswd import.
//!
//! New passwords are hashed with argon2id (the `argon2` crate's default
//! parameters, a random salt) into a PHC string (`$argon2id$v=19$...`).
//! Verification also accepts bcrypt hashes (`$2y$`, `$2b$`, `$2a$`), which an
//! htpasswd import keeps as they are.
//!
//! Both are deliberately slow (~20 ms of CPU): async callers must run
//! [`hash_password`] and [`verify_password`] inside
//! `tokio::task::spawn_blocking`, never on the async worker threads.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::IdentityError;

/// The bcrypt prefixes accepted (htpasswd `-B` writes `$2y$`).
const BCRYPT_PREFIXES: [&str; 3] = ["$2y$", "$2b$", "$2a$"];

/// Hashes a password with argon2id and a random salt, as a PHC string.
///
/// CPU-heavy: call it from `spawn_blocking` in async code.
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| IdentityError::PasswordHash(e.to_string()))
}

/// Whether `password` matches `hash` (argon2id PHC string or bcrypt). A wrong
/// password, a malformed hash and an unknown scheme all give `false`.
///
/// CPU-heavy: call it from `spawn_blocking` in async code.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2id$") {
        match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    } else if is_bcrypt(hash) {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

fn is_bcrypt(hash: &str) -> bool {
    BCRYPT_PREFIXES.iter().any(|p| hash.starts_with(p))
}

/// Reads an htpasswd file: `user:hash` lines, blank lines and `#` comments
/// skipped. Only bcrypt hashes (`htpasswd -B`) are accepted; a line with any
/// other scheme is an error naming the line.
///
/// User names are returned as written; the caller checks them as names.
pub fn parse_htpasswd(text: &str) -> Result<Vec<(String, String)>, IdentityError> {
    let mut users = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let err = |reason: String| IdentityError::Htpasswd { line, reason };
        let Some((user, hash)) = entry.split_once(':') else {
            return Err(err("expected `user:hash`".to_owned()));
        };
        if user.is_empty() {
            return Err(err("the user name before `:` is empty".to_owned()));
        }
        if is_bcrypt(hash) {
            // Refuse a hash that could never verify, rather than import a dead account.
            if hash.len() != 60 || !hash.is_ascii() {
                return Err(err(format!(
                    "user `{user}`: malformed bcrypt hash (expected 60 characters); \
                     re-hash the password with `htpasswd -B`"
                )));
            }
            users.push((user.to_owned(), hash.to_owned()));
            continue;
        }
        let scheme = if hash.starts_with("$apr1$") {
            "MD5 (`$apr1$`)"
        } else if hash.starts_with("{SHA}") {
            "SHA-1 (`{SHA}`)"
        } else if hash.starts_with('$') {
            "an unsupported `$...$` scheme"
        } else {
            "crypt or plain text"
        };
        return Err(err(format!(
            "user `{user}`: the hash is {scheme}, which berth does not accept; \
             re-hash the password with `htpasswd -B` (bcrypt)"
        )));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bcrypt hash as `htpasswd -B` writes it (`$2y$`), at cost 4 to keep tests fast.
    fn htpasswd_bcrypt(password: &str) -> String {
        bcrypt::hash_with_result(password, 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY)
    }

    #[test]
    fn argon2id_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password(&hash, ""));
        // A random salt: the same password hashes differently each time.
        assert_ne!(hash, hash_password("correct horse").unwrap());
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let hash = htpasswd_bcrypt("hunter2");
        assert!(verify_password(&hash, "hunter2"));
        assert!(!verify_password(&hash, "hunter3"));
        for prefix in ["$2b$", "$2a$"] {
            let other = format!("{prefix}{}", &hash[4..]);
            assert!(verify_password(&other, "hunter2"), "{other}");
        }
    }

    #[test]
    fn malformed_hashes_are_false() {
        for hash in [
            "",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$!!!",
            "$2y$04$short",
            "$2y$xx$G4VWNlEEB5JEEyOChkY6ruSwRGz9X5Sgim1yMP9.0AqxQHmxZ3lU.",
            "$2y$04$é4VWNlEEB5JEEyOChkY6ruSwRGz9X5Sgim1yMP9.0AqxQHmxZ3lU",
            "$2x$04$G4VWNlEEB5JEEyOChkY6ruSwRGz9X5Sgim1yMP9.0AqxQHmxZ3lU.",
            "$apr1$abc$def",
            "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "plaintext",
        ] {
            assert!(!verify_password(hash, "hunter2"), "{hash}");
        }
    }

    #[test]
    fn htpasswd_import() {
        let alice = htpasswd_bcrypt("hunter2");
        let bob = htpasswd_bcrypt("pw");
        assert!(alice.starts_with("$2y$04$"), "{alice}");
        let text = format!("# users\n\nalice:{alice}\n  bob:{bob}  \n# end\n");
        let users = parse_htpasswd(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0], ("alice".to_owned(), alice));
        assert_eq!(users[1].0, "bob");
        assert!(verify_password(&users[0].1, "hunter2"));
        assert!(verify_password(&users[1].1, "pw"));
        assert!(!verify_password(&users[1].1, "hunter2"));
        assert!(parse_htpasswd("").unwrap().is_empty());
    }

    #[test]
    fn htpasswd_refuses_other_schemes_naming_the_line() {
        for (text, line, needle) in [
            ("alice:$apr1$x$y\n", 1, "MD5"),
            ("# c\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", 2, "SHA-1"),
            ("\n\ncarol:abJnggxhB/yWI\n", 3, "crypt"),
            ("erin:$2y$04$short\n", 1, "malformed"),
        ] {
            let err = parse_htpasswd(text).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, IdentityError::Htpasswd { line: l, .. } if l == line),
                "{text:?}: {message}"
            );
            assert!(message.contains(needle), "{message}");
            assert!(message.contains(&format!("line {line}")), "{message}");
            assert!(message.contains("htpasswd -B"), "{message}");
        }
        for (text, needle) in [("dave\n", "user:hash"), (":$2y$04$x\n", "empty")] {
            let message = parse_htpasswd(text).unwrap_err().to_string();
            assert!(message.contains(needle), "{message}");
        }
    }
}
