//! `google.api.http` path templates: parsed once, matched against request paths.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! A variable without `=` matches one segment (`{id}` is `{id=*}`); `**` matches any number of
//! segments (at least none) and may only come last. A variable's value is what its segments
//! matched, percent-decoded (a multi-segment value keeps `%2F` as it is, so it still says where
//! its segments were).

/// One piece of a template, as matched against one or more path segments.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `*`: one segment.
    One,
    /// `**`: the rest of the segments.
    Rest,
}

/// A template variable's field path and the value the request gave it.
pub type Bound = (Vec<String>, String);

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Variables: their field path and the pieces they span (`start..end`).
    variables: Vec<(Vec<String>, std::ops::Range<usize>)>,
    verb: Option<String>,
}

impl Template {
    pub fn parse(template: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("the path template {template:?} {why}");
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| bad("does not start with /"))?;
        // The verb is after the last segment's `:` outside braces.
        let (body, verb) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('}') && !rest[at..].contains('/') => {
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if verb.as_ref().is_some_and(|v| v.is_empty()) {
            return Err(bad("has an empty verb"));
        }
        let mut pieces = Vec::new();
        let mut variables = Vec::new();
        let mut chars = body;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let end = inner.find('}').ok_or_else(|| bad("has an unclosed {"))?;
                let (field, segments) = match inner[..end].split_once('=') {
                    Some((f, s)) => (f, s),
                    None => (&inner[..end], "*"),
                };
                let path: Vec<String> = field.split('.').map(str::to_string).collect();
                if path.iter().any(|p| !is_ident(p)) {
                    return Err(bad(&format!("names {field:?}, which is not a field path")));
                }
                let start = pieces.len();
                for segment in segments.split('/') {
                    pieces.push(piece(segment).map_err(|why| bad(&why))?);
                }
                variables.push((path, start..pieces.len()));
                chars = &inner[end + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                let segment = &chars[..end];
                if segment.contains(['{', '}']) {
                    return Err(bad("has a brace inside a segment"));
                }
                pieces.push(piece(segment).map_err(|why| bad(&why))?);
                chars = &chars[end..];
            }
            match chars.strip_prefix('/') {
                Some(next) if !next.is_empty() => chars = next,
                Some(_) => return Err(bad("ends with /")),
                None if chars.is_empty() => {}
                None => return Err(bad("has a variable not followed by /")),
            }
        }
        if let Some(at) = pieces.iter().position(|p| *p == Piece::Rest)
            && at + 1 != pieces.len()
        {
            return Err(bad("has ** before its last segment"));
        }
        Ok(Template {
            pieces,
            variables,
            verb,
        })
    }

    /// The variables' field paths and values when `path` (a request's, without its query)
    /// matches.
    pub fn matches(&self, path: &str) -> Option<Vec<Bound>> {
        let path = path.strip_prefix('/')?;
        let path = match &self.verb {
            Some(verb) => path.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => path,
        };
        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        // Where each piece's segments start: pieces before `**` take one each.
        let mut spans = Vec::with_capacity(self.pieces.len());
        let mut at = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(l) => {
                    if segments.get(at) != Some(&l.as_str()) {
                        return None;
                    }
                    spans.push(at..at + 1);
                    at += 1;
                }
                Piece::One => {
                    if segments.get(at).is_none_or(|s| s.is_empty()) {
                        return None;
                    }
                    spans.push(at..at + 1);
                    at += 1;
                }
                Piece::Rest => {
                    spans.push(at..segments.len());
                    at = segments.len();
                }
            }
        }
        if at != segments.len() {
            return None;
        }
        let values = self
            .variables
            .iter()
            .map(|(field, pieces)| {
                let from = spans.get(pieces.start).map_or(at, |s| s.start);
                let to = pieces
                    .end
                    .checked_sub(1)
                    .and_then(|last| spans.get(last))
                    .map_or(from, |s| s.end);
                let value = &segments[from..to];
                let decoded = if value.len() == 1 {
                    percent_decode(value[0].as_bytes(), false)
                } else {
                    value
                        .iter()
                        .map(|s| percent_decode(s.as_bytes(), true))
                        .collect::<Vec<_>>()
                        .join("/")
                };
                (field.clone(), decoded)
            })
            .collect();
        Some(values)
    }

    /// The field paths the template binds.
    pub fn fields(&self) -> impl Iterator<Item = &[String]> {
        self.variables.iter().map(|(f, _)| f.as_slice())
    }
}

fn piece(segment: &str) -> Result<Piece, String> {
    match segment {
        "" => Err("has an empty segment".into()),
        "*" => Ok(Piece::One),
        "**" => Ok(Piece::Rest),
        literal if literal.contains('*') => {
            Err(format!("has a segment {literal:?} mixing * and text"))
        }
        literal => Ok(Piece::Literal(literal.to_string())),
    }
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Percent-decodes `s` (a `%` not followed by two hex digits stays as it is); with
/// `keep_slash`, `%2F` stays encoded. Also what reads a backend's `grpc-message`.
pub fn percent_decode(s: &[u8], keep_slash: bool) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                s.get(i + 1).and_then(|b| hex(*b)),
                s.get(i + 2).and_then(|b| hex(*b)),
            )
            && !(keep_slash && hi == 2 && lo == 0xf)
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(t: &str, path: &str) -> Option<Vec<(String, String)>> {
        Template::parse(t).unwrap().matches(path).map(|v| {
            v.into_iter()
                .map(|(f, value)| (f.join("."), value))
                .collect()
        })
    }

    #[test]
    fn templates_match_as_google_api_http_says() {
        assert_eq!(
            vars("/v1/products/{id}", "/v1/products/7"),
            Some(vec![("id".into(), "7".into())])
        );
        assert_eq!(vars("/v1/products/{id}", "/v1/products/7/x"), None);
        assert_eq!(vars("/v1/products/{id}", "/v1/products/"), None);
        assert_eq!(vars("/v1/products", "/v1/products"), Some(vec![]));
        assert_eq!(
            vars("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books/2"),
            Some(vec![("name".into(), "shelves/1/books/2".into())])
        );
        assert_eq!(
            vars(
                "/v1/{book.name=shelves/*}/read:mark",
                "/v1/shelves/a%20b/read:mark"
            ),
            Some(vec![("book.name".into(), "shelves/a b".into())])
        );
        assert_eq!(
            vars("/v1/{book.name=shelves/*}/read:mark", "/v1/shelves/a/read"),
            None
        );
        assert_eq!(
            vars("/v1/files/{path=**}", "/v1/files/a/b%2Fc/d"),
            Some(vec![("path".into(), "a/b%2Fc/d".into())])
        );
        assert_eq!(
            vars("/v1/{id}", "/v1/a%2Fb"),
            Some(vec![("id".into(), "a/b".into())])
        );
        // Not an escape: kept as it is.
        assert_eq!(
            vars("/v1/{id}", "/v1/100%+1%zz%4"),
            Some(vec![("id".into(), "100%+1%zz%4".into())])
        );
    }

    #[test]
    fn malformed_templates_say_what_is_wrong() {
        for (t, why) in [
            ("v1/x", "does not start with /"),
            ("/v1/{id", "unclosed"),
            ("/v1/{id-x}", "not a field path"),
            ("/v1/**/x", "** before its last segment"),
            ("/v1//x", "empty segment"),
            ("/v1/a*", "mixing"),
            ("/v1/x:", "empty verb"),
        ] {
            let e = Template::parse(t).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        }
    }
}
