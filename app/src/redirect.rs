//! Where to send someone after they sign in. Only std here: fuzz/ includes this file by path.

/// Where a successful login lands unless a safe `next` says otherwise.
pub const DEFAULT_AFTER_LOGIN: &str = "/success";

/// Accepts `next` only if it is a path on this site: starts with one `/`, no scheme, no `//host`, no
/// backslash tricks, no control characters. Anything else falls back to the default.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(|c| c.is_control()) && n.len() <= 512 => {
            n.to_string()
        }
        _ => DEFAULT_AFTER_LOGIN.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_allows_local_paths() {
        assert_eq!(safe_next(Some("/success")), "/success");
        assert_eq!(safe_next(Some("/a/b?c=d")), "/a/b?c=d");
        for bad in ["https://evil.example/", "//evil.example", "/\\evil.example", "evil", "", "/a\nb", "javascript:alert(1)"] {
            assert_eq!(safe_next(Some(bad)), DEFAULT_AFTER_LOGIN, "{bad:?}");
        }
        assert_eq!(safe_next(None), DEFAULT_AFTER_LOGIN);
    }
}
