//! The normal form of request paths, shared by the proxy (which normalises every request before
//! matching) and the compiler (which requires configured paths to be in normal form, so that a
//! route can never silently fail to match).
//!
//! Normalising closes the classic ways to reach a path without matching its route:
//! - percent-encoded unreserved characters are decoded (`%2e` is `.`, `%41` is `A`, RFC 3986
//!   §6.2.2.2) and other percent-encodings get upper-case hex, so one resource has one spelling;
//! - dot segments are resolved (`/public/../admin` and `/public/%2e%2e/admin` are `/admin`) and
//!   repeated slashes merged;
//! - encoded slashes and backslashes (`%2F`, `%5C`), raw backslashes, encoded NUL and malformed
//!   percent-encodings are rejected: backends disagree on what they mean.
//!
//! The normalised path is also what goes upstream, so the backend sees what was matched.

use std::borrow::Cow;
use std::fmt;

/// Why a request path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSlash,
    Backslash,
    EncodedNul,
    BadPercentEncoding,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path must start with '/'",
            PathError::EncodedSlash => "encoded slashes (%2F) are not accepted in paths",
            PathError::Backslash => "backslashes (\\ or %5C) are not accepted in paths",
            PathError::EncodedNul => "encoded NUL (%00) is not accepted in paths",
            PathError::BadPercentEncoding => "'%' must be followed by two hex digits",
        })
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises a request path (without its query). Borrows when it is already normal.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    if bytes.contains(&b'\\') {
        return Err(PathError::Backslash);
    }
    let needs_work = bytes.contains(&b'%') || path.contains("//") || path.contains("/.");
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

fn decode_unreserved(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            // Non-ASCII bytes cannot appear: the caller passes a &str from a parsed URI, whose
            // path is ASCII; keep them as they are regardless.
            out.push(b as char);
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadPercentEncoding);
        };
        let value = h * 16 + l;
        match value {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::EncodedNul),
            v if is_unreserved(v) => out.push(v as char),
            v => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(v & 0xf)]));
            }
        }
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 §5.2.4, plus merging repeated slashes.
fn remove_dot_segments(path: &str) -> String {
    let segs: Vec<&str> = path[1..].split('/').collect();
    let last = segs.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segs.len());
    let mut trailing = false;
    for (i, seg) in segs.iter().enumerate() {
        trailing = false;
        match *seg {
            "" if i != last => {}
            "." => trailing = true,
            ".." => {
                out.pop();
                trailing = true;
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(path.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if result.is_empty() || (trailing && !result.ends_with('/')) {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dot_segments_and_merges_slashes() {
        let cases = [
            ("/a/b", "/a/b"),
            ("/", "/"),
            ("/a/", "/a/"),
            ("/public/../admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("//a///b", "/a/b"),
            ("/..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/.hidden", "/a/.hidden"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn encoded_dots_and_letters_are_decoded_before_resolving() {
        assert_eq!(normalize("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/%2E./admin").unwrap(), "/admin");
        assert_eq!(normalize("/%61pi/x").unwrap(), "/api/x");
        assert_eq!(
            normalize("/a%20b/%c3%a9").unwrap(),
            "/a%20b/%C3%A9",
            "others keep one spelling"
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(normalize("/a/%2F/b"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a/%2f..%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a\\..\\b"), Err(PathError::Backslash));
        assert_eq!(normalize("/a%5cb"), Err(PathError::Backslash));
        assert_eq!(normalize("/a%00"), Err(PathError::EncodedNul));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("/a%2"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
    }
}
