//! The default username rule of the reference server.

/// 2 to 32 characters of `a-z A-Z 0-9 . - @ _`, starting with a letter, ending with a letter or
/// digit, never two special characters (`. - @ _`) in a row.
pub fn is_valid_username(username: &str) -> bool {
    let bytes = username.as_bytes();
    let special = |b: u8| matches!(b, b'.' | b'-' | b'@' | b'_');
    (2..=32).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || special(b))
        && !bytes.windows(2).any(|w| special(w[0]) && special(w[1]))
}

#[cfg(test)]
mod tests {
    use super::is_valid_username;

    #[test]
    fn the_reference_rule() {
        let valid = ["simon", "ab", "a1", "Simon.Karman", "a-b_c@d.e", "x".repeat(32).as_str(), "z9"]
            .map(String::from);
        for name in valid {
            assert!(is_valid_username(&name), "{name:?} should be valid");
        }
        let invalid = [
            "", "a", "1abc", "_abc", "abc_", "abc.", "a..b", "a.-b", "a@_b", "a b", "ab!", "héllo",
            "x".repeat(33).as_str(), "a\nb", "-ab",
        ]
        .map(String::from);
        for name in invalid {
            assert!(!is_valid_username(&name), "{name:?} should be invalid");
        }
    }
}
