//! Path normalisation before matching, so `/public/../admin` cannot reach a route it does not
//! match: dot segments are resolved (RFC 3986 §5.2.4) and repeated slashes merged, and the
//! normalised path is what goes upstream (as Envoy's `normalize_path` and `merge_slashes`).
//! Percent-encoded slashes and dots are left as they are: they are data, not structure.

use std::borrow::Cow;

/// Returns the normalised path, or `None` when the request target is not an absolute path.
pub fn normalize(path: &str) -> Option<Cow<'_, str>> {
    if !path.starts_with('/') {
        return None;
    }
    if !path.contains("//") && !path.contains("/.") {
        return Some(Cow::Borrowed(path));
    }
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path[1..].split('/').collect();
    let last = segs.len() - 1;
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
    Some(Cow::Owned(result))
}

#[cfg(test)]
mod tests {
    use super::normalize;

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
            ("/a/%2e%2e/b", "/a/%2e%2e/b"),
            ("/a/.hidden", "/a/.hidden"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).unwrap(), expected, "{input}");
        }
        assert!(normalize("*").is_none());
        assert!(normalize("a/b").is_none());
    }
}
