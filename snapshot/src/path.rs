//! The canonical form of request paths, shared by the proxy (which puts every request path in
//! it before matching, and forwards that form) and the compiler (which puts configured paths in
//! it, so that a route can be written naturally and still match).
//!
//! A gateway and the server behind it must agree on which resource a path names, or a Policy
//! on `/admin` can be walked around by spelling `/admin` differently. The rules (see
//! docs/routes.md for the reasoning and Envoy's edge guidance):
//! - percent-escapes that do not change the path's structure are decoded: unreserved
//!   characters (`%41` is `A`, `%2e` is `.`) and the sub-delimiters `:` `@` `!` `$` `&` `'` `(`
//!   `)` `*` `+` `,` `=` (`/v1/orders%3Acancel` is `/v1/orders:cancel`); the others keep their
//!   escape, with upper-case hex;
//! - dot segments are resolved (`/public/../admin` and `/public/%2e%2e/admin` are `/admin`) and
//!   repeated slashes merged;
//! - raw non-ASCII characters are percent-encoded (UTF-8), so one path has one spelling on
//!   the way to the backend;
//! - refused, because servers disagree on what they mean: encoded slashes and backslashes
//!   (`%2F`, `%5C`, `\`), control characters and NUL (raw or encoded), malformed escapes,
//!   double encoding (`%25` followed by two hex digits: `/%2561dmin`), path parameters (`;`
//!   raw or as `%3B`: servlet containers drop `/admin;x` to `/admin` and read `/..;/` as
//!   `/../`), segments ending in a dot or a space (`/admin.`, `/admin%20`: Windows servers drop
//!   them), escaped bytes that are not UTF-8 (overlong `%C0%AF`), and characters whose
//!   compatibility form is ASCII (full-width `/ａdmin`, ligatures).
//!
//! Letter case is kept: paths are case-sensitive. A match can ask to ignore case for a
//! case-insensitive backend (`ignoreCase`), so that `/Admin` reaches the same Policy as `/admin`.

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Why a request path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSlash,
    Backslash,
    ControlCharacter,
    BadPercentEncoding,
    DoubleEncoding,
    PathParameter,
    TrailingDotOrSpace,
    NotUtf8,
    LookAlike,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path must start with '/'",
            PathError::EncodedSlash => "encoded slashes (%2F) are not accepted in paths",
            PathError::Backslash => "backslashes (\\ or %5C) are not accepted in paths",
            PathError::ControlCharacter => {
                "control characters and NUL (raw or percent-encoded) are not accepted in paths"
            }
            PathError::BadPercentEncoding => "'%' must be followed by two hex digits",
            PathError::DoubleEncoding => {
                "double percent-encoding (%25 followed by two hex digits) is not accepted in paths"
            }
            PathError::PathParameter => {
                "path parameters (';', raw or as %3B) are not accepted: servers disagree on them"
            }
            PathError::TrailingDotOrSpace => {
                "a path segment must not end with '.' or a space: servers disagree on them"
            }
            PathError::NotUtf8 => "percent-encoded bytes in paths must be UTF-8",
            PathError::LookAlike => {
                "characters that stand for ASCII ones (full-width forms, ligatures) are not \
                 accepted in paths"
            }
        })
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Characters a path segment may hold raw without changing the path's structure (RFC 3986
/// `pchar` less `;` and `+`, which form-decoding servers read as a space; plus `{` `}`, which
/// templates use): an escape of one of these is decoded.
fn decodes(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b','
                | b'='
                | b':'
                | b'@'
                | b'{'
                | b'}'
        )
}

/// Characters a client may send raw that are not path characters: kept escaped, so that each
/// has one spelling.
fn escaped_when_raw(b: u8) -> bool {
    matches!(
        b,
        b'"' | b'[' | b']' | b'^' | b'|' | b'`' | b'<' | b'>' | b' '
    )
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Puts a request path (without its query) in canonical form. Borrows when it already is.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    let needs_work = bytes.iter().any(|&b| {
        matches!(b, b'%' | b';' | b'\\') || !b.is_ascii() || is_control(b) || escaped_when_raw(b)
    }) || path.contains("//")
        || path.contains("/.")
        || path.contains("./")
        || path.ends_with('.');
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path)?;
    Ok(Cow::Owned(resolve_segments(&decoded)?))
}

/// Decodes the escapes that keep the structure, upper-cases the others, percent-encodes raw
/// non-ASCII and refuses what servers disagree on.
fn decode(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len() + 8);
    // Escaped bytes >= 0x80, collected until the sequence ends, then checked as UTF-8.
    let mut high: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadPercentEncoding);
            };
            let v = h * 16 + l;
            i += 3;
            if v >= 0x80 {
                high.push(v);
                continue;
            }
            flush_high(&mut high, &mut out)?;
            match v {
                b'/' => return Err(PathError::EncodedSlash),
                b'\\' => return Err(PathError::Backslash),
                b';' => return Err(PathError::PathParameter),
                b'%' => {
                    let next_is_hex = bytes.get(i).copied().and_then(hex).is_some()
                        && bytes.get(i + 1).copied().and_then(hex).is_some();
                    if next_is_hex {
                        return Err(PathError::DoubleEncoding);
                    }
                    out.push_str("%25");
                }
                v if is_control(v) => return Err(PathError::ControlCharacter),
                v if decodes(v) => out.push(char::from(v)),
                v => push_escaped(&mut out, v),
            }
            continue;
        }
        flush_high(&mut high, &mut out)?;
        if b.is_ascii() {
            match b {
                b'\\' => return Err(PathError::Backslash),
                b';' => return Err(PathError::PathParameter),
                b if is_control(b) => return Err(PathError::ControlCharacter),
                b if escaped_when_raw(b) => push_escaped(&mut out, b),
                b => out.push(char::from(b)),
            }
            i += 1;
            continue;
        }
        // A raw non-ASCII character (the path is a &str: whole characters).
        let c = path[i..].chars().next().expect("a character starts here");
        check_look_alike(c)?;
        let mut utf8 = [0u8; 4];
        for &byte in c.encode_utf8(&mut utf8).as_bytes() {
            push_escaped(&mut out, byte);
        }
        i += c.len_utf8();
    }
    flush_high(&mut high, &mut out)?;
    // Decoding can also make double encoding: `%25%61d` becomes `%25ad`. IIS also reads
    // `%uXXXX`, so `%25u0061` counts too.
    let b = out.as_bytes();
    let is_hex = |i: usize| b.get(i).copied().and_then(hex).is_some();
    let double = (0..b.len()).any(|i| {
        b[i..].starts_with(b"%25")
            && ((is_hex(i + 3) && is_hex(i + 4))
                || (matches!(b.get(i + 3), Some(b'u' | b'U')) && (4..8).all(|k| is_hex(i + k))))
    });
    if double {
        return Err(PathError::DoubleEncoding);
    }
    Ok(out)
}

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
    out.push(char::from(UPPER_HEX[usize::from(b & 0xf)]));
}

/// A run of escaped bytes >= 0x80: must be UTF-8 without look-alikes; kept escaped.
fn flush_high(high: &mut Vec<u8>, out: &mut String) -> Result<(), PathError> {
    if high.is_empty() {
        return Ok(());
    }
    let text = std::str::from_utf8(high).map_err(|_| PathError::NotUtf8)?;
    for c in text.chars() {
        check_look_alike(c)?;
    }
    for &b in high.iter() {
        push_escaped(out, b);
    }
    high.clear();
    Ok(())
}

/// Refuses a non-ASCII character whose compatibility form (NFKC) holds ASCII: a server that
/// normalises Unicode would read `ａ` (U+FF41) as `a`.
fn check_look_alike(c: char) -> Result<(), PathError> {
    if std::iter::once(c).nfkc().any(|n| n.is_ascii()) {
        return Err(PathError::LookAlike);
    }
    Ok(())
}

/// RFC 3986 §5.2.4 dot segments, plus merging repeated slashes and refusing segments that
/// end in a dot or a space.
fn resolve_segments(path: &str) -> Result<String, PathError> {
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
            s if s.ends_with('.') || s.ends_with("%20") => {
                return Err(PathError::TrailingDotOrSpace);
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
    Ok(result)
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
            ("/a/b.c/d", "/a/b.c/d"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).unwrap(), expected, "{input}");
        }
        assert!(matches!(normalize("/a/b.c/d").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_that_keep_the_structure_are_decoded_and_others_upper_cased() {
        assert_eq!(normalize("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/%2E./admin").unwrap(), "/admin");
        assert_eq!(normalize("/%61pi/x").unwrap(), "/api/x");
        assert_eq!(normalize("/%41dmin").unwrap(), "/Admin");
        assert_eq!(
            normalize("/v1/orders%3Acancel").unwrap(),
            "/v1/orders:cancel"
        );
        assert_eq!(normalize("/a%40b%2b%3d").unwrap(), "/a@b%2B=");
        // One spelling for characters clients send either way.
        assert_eq!(normalize("/a|b").unwrap(), "/a%7Cb");
        assert_eq!(normalize("/a%7cb").unwrap(), "/a%7Cb");
        assert_eq!(normalize("/a%7Bid%7D").unwrap(), "/a{id}");
        assert_eq!(normalize("/a\"b[c]^`").unwrap(), "/a%22b%5Bc%5D%5E%60");
        assert_eq!(
            normalize("/a%20b/%c3%a9/%3f%23%25x").unwrap(),
            "/a%20b/%C3%A9/%3F%23%25x",
            "the others keep one spelling"
        );
    }

    #[test]
    fn raw_non_ascii_is_percent_encoded() {
        assert_eq!(normalize("/caf\u{e9}/x").unwrap(), "/caf%C3%A9/x");
        assert_eq!(normalize("/caf%C3%A9/x").unwrap(), "/caf%C3%A9/x");
        assert_eq!(normalize("/\u{65e5}").unwrap(), "/%E6%97%A5");
    }

    #[test]
    fn paths_servers_disagree_on_are_refused() {
        let cases = [
            ("/a/%2F/b", PathError::EncodedSlash),
            ("/a/%2f..%2fb", PathError::EncodedSlash),
            ("/a\\..\\b", PathError::Backslash),
            ("/a%5cb", PathError::Backslash),
            ("/a%00", PathError::ControlCharacter),
            ("/a%0d%0aX: y", PathError::ControlCharacter),
            ("/a%7f", PathError::ControlCharacter),
            ("/a\u{1}", PathError::ControlCharacter),
            ("/a%zz", PathError::BadPercentEncoding),
            ("/a%2", PathError::BadPercentEncoding),
            ("*", PathError::NotAbsolute),
            ("/%2561dmin", PathError::DoubleEncoding),
            ("/%252e%252e/admin", PathError::DoubleEncoding),
            ("/%25%61dmin", PathError::DoubleEncoding),
            ("/%25u0061dmin", PathError::DoubleEncoding),
            ("/admin;x", PathError::PathParameter),
            ("/..;/admin", PathError::PathParameter),
            ("/admin%3Bx", PathError::PathParameter),
            ("/admin%3bjsessionid=1", PathError::PathParameter),
            ("/admin.", PathError::TrailingDotOrSpace),
            ("/admin./x", PathError::TrailingDotOrSpace),
            ("/admin...", PathError::TrailingDotOrSpace),
            ("/admin%20", PathError::TrailingDotOrSpace),
            ("/admin%2e", PathError::TrailingDotOrSpace),
            ("/%C0%AFadmin", PathError::NotUtf8),
            ("/%E9t%E9", PathError::NotUtf8),
            ("/\u{ff41}dmin", PathError::LookAlike),
            ("/%EF%BD%81dmin", PathError::LookAlike),
            ("/\u{fb01}le", PathError::LookAlike),
            ("/admin%C2%A0", PathError::LookAlike),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn a_lone_percent_stays_encoded() {
        assert_eq!(normalize("/100%25").unwrap(), "/100%25");
        assert_eq!(normalize("/100%25off").unwrap(), "/100%25off");
    }

    #[test]
    fn the_canonical_form_is_a_fixed_point() {
        for input in [
            "/a/%2e%2e/b",
            "/caf\u{e9}",
            "/v1/orders%3Acancel",
            "/a%20b",
            "//x/./y/",
        ] {
            let once = normalize(input).unwrap().into_owned();
            assert_eq!(normalize(&once).unwrap(), once, "{input}");
        }
    }
}
