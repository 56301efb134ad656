//! The rules a *new* password must meet (sign-up and password change), after OWASP ASVS 5.0 §6.2:
//! a length range, no composition rules, and a refusal of the most common passwords.
//!
//! Decisions, so the UI and the docs can say the same thing:
//! - Length is counted in Unicode code points (NIST SP 800-63B counts each code point as one character),
//!   so `"ééé…"` and emoji count one each, never their UTF-8 bytes.
//! - The password is used exactly as received: no trimming, no case folding, no Unicode normalisation
//!   and no truncation (ASVS 6.2: "verifies the user's password exactly as received"). NIST suggests
//!   NFKC/NFKD before hashing; we do not, because it would change the bytes that every existing hash was
//!   made from, and browsers send what the keyboard produced (NFC in practice). Spaces, emoji and any other
//!   printable character are allowed; only control characters (NUL, tab, line breaks, …) are refused,
//!   because a password containing one cannot be typed back into a one-line field.
//! - Signing in still accepts anything up to [`MAX_PASSWORD_BYTES`], so a password this policy accepts
//!   (at most [`PasswordPolicy::max_chars`] code points, 4 bytes each at most) always fits.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::password::MAX_PASSWORD_BYTES;
use crate::AuthError;

/// Length limits for new passwords. Existing passwords are never re-checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Shortest accepted, in code points (ASVS: at least 8).
    pub min_chars: usize,
    /// What the UI should suggest (ASVS: 15 strongly recommended). Not enforced.
    pub recommended_chars: usize,
    /// Longest accepted, in code points (ASVS: at least 64 must be allowed). Long enough for any password
    /// manager's output or a pasted passphrase; it only stops pathological bodies.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::ASVS
    }
}

impl PasswordPolicy {
    pub const ASVS: PasswordPolicy = PasswordPolicy { min_chars: 8, recommended_chars: 15, max_chars: 128 };

    /// Checks a password the user wants to start using. Messages are safe to show and say what to do.
    ///
    /// `username` is refused as the password, and so is a password that is short once the username is
    /// taken out of it (`alice2024` for `alice`): the username is public, so it adds nothing an attacker
    /// must guess. A password that merely *contains* a short username by chance (`bookmark drawer` for
    /// `mark`) is fine as long as the rest is long enough on its own.
    pub fn check(&self, password: &str, username: &str) -> Result<(), AuthError> {
        // The byte cap first: it is the cheap guard before counting or lowercasing anything.
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(too_long(self.max_chars));
        }
        if password.is_empty() {
            return Err(AuthError::InvalidInput("Enter a password.".into()));
        }
        if password.chars().any(char::is_control) {
            return Err(AuthError::InvalidInput("Passwords cannot contain control characters such as tabs or line breaks.".into()));
        }
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(AuthError::InvalidInput(format!(
                "Use at least {} characters ({} or more is better). Spaces and any other characters are allowed.",
                self.min_chars, self.recommended_chars
            )));
        }
        if chars > self.max_chars {
            return Err(too_long(self.max_chars));
        }
        let lower = password.to_lowercase();
        let name = username.trim().to_lowercase();
        if !name.is_empty() && lower.contains(&name) {
            let rest = lower.replace(&name, "");
            if rest.chars().count() < self.min_chars {
                return Err(AuthError::InvalidInput("Your password cannot be your username or mostly made of it.".into()));
            }
        }
        if is_common_password(password) {
            return Err(AuthError::InvalidInput(
                "That password is one of the most commonly used, so it is among the first an attacker tries. \
                 Choose another."
                    .into(),
            ));
        }
        Ok(())
    }
}

fn too_long(max_chars: usize) -> AuthError {
    AuthError::InvalidInput(format!("Passwords are at most {max_chars} characters."))
}

/// [`PasswordPolicy::ASVS`]'s check: what sign-up and password change apply.
pub fn check_new_password(password: &str, username: &str) -> Result<(), AuthError> {
    PasswordPolicy::ASVS.check(password, username)
}

/// The shipped list (see its header for the source and licence): 3,000 passwords from zxcvbn 4.5.0's
/// ranking, all lowercase. Only the 8+ character ones can matter once the length rule has run, but the
/// file is the top 3,000 as published so it can be checked against the source.
const COMMON_PASSWORDS_FILE: &str = include_str!("../data/common-passwords-3000.txt");

/// The list parsed once into a set.
pub fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS_FILE.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect())
}

/// Is `password` on the list, ignoring case (`PASSWORD1` is as guessable as `password1`)?
pub fn is_common_password(password: &str) -> bool {
    common_passwords().contains(password.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::{PasswordHasher, Verification};

    fn refused(pw: &str, user: &str) -> String {
        match check_new_password(pw, user) {
            Err(AuthError::InvalidInput(m)) => m,
            other => panic!("{pw:?} for {user:?}: expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn list_is_the_top_3000_in_order_and_lowercase() {
        let entries: Vec<&str> = COMMON_PASSWORDS_FILE.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(entries.len(), 3000);
        assert_eq!(common_passwords().len(), 3000, "no duplicates");
        assert_eq!(&entries[..3], &["123456", "password", "12345678"]);
        assert!(entries.iter().all(|e| *e == e.to_lowercase() && !e.is_empty() && e.trim() == *e));
    }

    #[test]
    fn seven_characters_are_refused_eight_accepted() {
        let m = refused("kx7!qpz", "alice");
        assert!(m.contains("at least 8") && m.contains("15"), "{m}");
        assert!(check_new_password("kx7!qpzw", "alice").is_ok());
        // Code points, not bytes: 7 two-byte letters are still 7 characters.
        refused("ééééééé", "alice");
        assert!(check_new_password("éééééééé", "alice").is_ok());
    }

    #[test]
    fn long_passwords_are_allowed_up_to_the_limits() {
        assert!(check_new_password(&"q7".repeat(32), "alice").is_ok(), "64");
        assert!(check_new_password(&"q7".repeat(64), "alice").is_ok(), "128");
        refused(&"q7x".repeat(43), "alice"); // 129 characters
                                             // 1025 bytes is over the byte cap whatever the characters are.
        let m = refused(&"x".repeat(1025), "alice");
        assert!(m.contains("at most"), "{m}");
        // 128 four-byte characters are 512 bytes: the character limit is the one that binds.
        assert!(check_new_password(&"🦀🐙".repeat(64), "alice").is_ok());
    }

    #[test]
    fn no_composition_rules_spaces_emoji_and_passphrases_are_fine() {
        for pw in [
            "correct horse battery staple",
            "all lowercase letters only",
            "    leading and trailing spaces    ",
            "🦀🐙🦑🐳🦈🐬🐟🐠",
            "пароль для входа в систему",
            "Pasted from a manager: Jx$8vQ#2mL!9zR@4kT&7wN*1pB^6cF%3hD",
        ] {
            assert!(check_new_password(pw, "alice").is_ok(), "{pw:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        refused("line one\nline two", "alice");
        refused("tab\tseparated pass", "alice");
        refused("nul\0character pass", "alice");
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for pw in ["password", "12345678", "baseball", "PASSWORD", "BaseBall", "Sunshine", "iloveyou", "Trustno1"] {
            if pw.chars().count() >= 8 {
                let m = refused(pw, "alice");
                assert!(m.contains("most commonly used"), "{pw}: {m}");
            }
        }
        assert!(is_common_password("QWERTY"));
        assert!(!is_common_password("qwerty plus more words"));
    }

    #[test]
    fn the_username_is_refused_and_does_not_count_towards_the_length() {
        let m = refused("Margaretha", "margaretha");
        assert!(m.contains("username"), "{m}");
        refused("margaretha1!", "Margaretha");
        refused("xmargarethax", "margaretha");
        // Enough besides the username: fine.
        assert!(check_new_password("margaretha plus plenty", "margaretha").is_ok());
        // A short username inside an ordinary passphrase is fine too.
        assert!(check_new_password("bookmark drawer", "mark").is_ok());
        refused("mark2024!", "mark");
    }

    #[test]
    fn nothing_is_truncated_the_last_character_of_a_long_password_matters() {
        let base = "p".repeat(99);
        let (a, b) = (format!("{base}a"), format!("{base}b"));
        assert!(check_new_password(&a, "alice").is_ok());
        let h = PasswordHasher::with_params(1024, 1, 1).unwrap();
        let (ha, hb) = (h.hash_blocking(&a).unwrap(), h.hash_blocking(&b).unwrap());
        assert_eq!(h.verify_blocking(Some(&ha), &a), Verification::Valid { needs_rehash: false });
        assert_eq!(h.verify_blocking(Some(&ha), &b), Verification::Invalid);
        assert_eq!(h.verify_blocking(Some(&hb), &a), Verification::Invalid);
        assert_eq!(h.verify_blocking(Some(&hb), &b), Verification::Valid { needs_rehash: false });
    }
}
