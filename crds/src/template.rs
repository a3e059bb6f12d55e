//! Path templates (`/orders/{id}`) and substitution templates (`/v2/orders/{id}`).
//!
//! A match template captures whole segments; a substitution template may place captures
//! anywhere. Both are parsed once at compile time into [`Segment`]s.

use frontdesk_snapshot::Segment;

/// Parses a match template: `/`-separated segments, each a literal or exactly one `{name}`.
pub fn parse_match_template(value: &str) -> Result<Vec<Segment>, String> {
    let rest = value
        .strip_prefix('/')
        .ok_or("a template starts with '/'")?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    let mut names = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() {
            return Err(format!("empty segment in {value:?}"));
        }
        if let Some(inner) = raw.strip_prefix('{') {
            let name = inner.strip_suffix('}').ok_or_else(|| {
                format!("segment {raw:?}: a capture is a whole segment like {{id}}")
            })?;
            check_capture_name(name)?;
            if names.contains(&name) {
                return Err(format!("capture {{{name}}} appears twice"));
            }
            names.push(name);
            segments.push(Segment::Capture(name.to_string()));
        } else if raw.contains(['{', '}']) {
            return Err(format!(
                "segment {raw:?}: a capture is a whole segment like {{id}}"
            ));
        } else {
            segments.push(Segment::Literal(raw.to_string()));
        }
    }
    Ok(segments)
}

/// Parses a substitution template: literal text with `{name}` placeholders anywhere.
pub fn parse_substitution(value: &str) -> Result<Vec<Segment>, String> {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("unbalanced '}}' in {value:?}"));
        }
        if open > 0 {
            parts.push(Segment::Literal(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {value:?}"))?;
        let name = &after[..close];
        check_capture_name(name)?;
        parts.push(Segment::Capture(name.to_string()));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Segment::Literal(rest.to_string()));
    }
    Ok(parts)
}

/// The captures a substitution uses.
pub fn captures(parts: &[Segment]) -> impl Iterator<Item = &str> {
    parts.iter().filter_map(|p| match p {
        Segment::Capture(c) => Some(c.as_str()),
        Segment::Literal(_) => None,
    })
}

fn check_capture_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{{{name}}} is not a valid capture name (letters, digits and '_', not starting with a digit)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }
    fn cap(s: &str) -> Segment {
        Segment::Capture(s.into())
    }

    #[test]
    fn match_templates_parse_whole_segments() {
        assert_eq!(
            parse_match_template("/orders/{id}/items").unwrap(),
            vec![lit("orders"), cap("id"), lit("items")]
        );
        assert_eq!(parse_match_template("/").unwrap(), vec![]);
        assert!(
            parse_match_template("/orders/{id}.json")
                .unwrap_err()
                .contains("whole segment")
        );
        assert!(
            parse_match_template("/a/{id}/{id}")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            parse_match_template("/a//b")
                .unwrap_err()
                .contains("empty segment")
        );
        assert!(
            parse_match_template("/a/{1x}")
                .unwrap_err()
                .contains("not a valid capture")
        );
        assert!(parse_match_template("a").is_err());
    }

    #[test]
    fn substitutions_place_captures_anywhere() {
        assert_eq!(
            parse_substitution("/v2/{id}.json").unwrap(),
            vec![lit("/v2/"), cap("id"), lit(".json")]
        );
        assert!(
            parse_substitution("/v2/{id")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            parse_substitution("/v2/id}")
                .unwrap_err()
                .contains("unbalanced")
        );
    }
}
