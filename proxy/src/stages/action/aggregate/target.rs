//! A call's path and query from its template: literal text as compiled, placeholder values
//! percent-encoded so they can never add a segment, a parameter, a fragment or a host.

use frontdesk_snapshot::UrlPart;
use serde_json::Value;

use super::shape;

/// Every byte but ASCII letters, digits, `-`, `_` and `~` is encoded: `/`, `?`, `#`, `&`, `=`,
/// `%`, `.` and control characters included (so `..` cannot become a dot segment).
pub fn encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(
                char::from_digit(u32::from(b >> 4), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from_digit(u32::from(b & 15), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
        }
    }
}

/// Percent-decoding of a captured path segment (the proxy keeps escapes other than unreserved
/// ones in normalised paths); invalid UTF-8 is replaced.
pub fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| hex(*c)),
                bytes.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Renders a target. `field` finds an earlier call's result. `Err` names what is missing.
pub fn render<'a>(
    parts: &[UrlPart],
    captures: &[(&str, &str)],
    field: impl Fn(&str) -> Option<&'a Value>,
) -> Result<String, String> {
    let mut out = String::with_capacity(64);
    for part in parts {
        match part {
            UrlPart::Literal(l) => out.push_str(l),
            UrlPart::Capture(name) => {
                let raw = captures
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("capture {{{name}}} is missing"))?;
                encode(&decode(raw), &mut out);
            }
            UrlPart::Field { call, path } => {
                let v = field(call)
                    .and_then(|v| shape::lookup(v, path))
                    .ok_or_else(|| format!("field {call}.{path} is missing from call {call}"))?;
                match v {
                    Value::String(s) => encode(s, &mut out),
                    Value::Number(_) | Value::Bool(_) => encode(&v.to_string(), &mut out),
                    _ => {
                        return Err(format!(
                            "field {call}.{path} is not a string, number or boolean"
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts() -> Vec<UrlPart> {
        vec![
            UrlPart::Literal("/products/".into()),
            UrlPart::Capture("id".into()),
            UrlPart::Literal("?q=".into()),
            UrlPart::Capture("id".into()),
        ]
    }

    #[test]
    fn captures_cannot_change_the_shape_of_the_url() {
        for (raw, want) in [
            ("7", "/products/7?q=7"),
            (
                "..%2F..%2Fadmin",
                "/products/%2E%2E%2F%2E%2E%2Fadmin?q=%2E%2E%2F%2E%2E%2Fadmin",
            ),
            ("..", "/products/%2E%2E?q=%2E%2E"),
            ("a%3Fx%3D1%26y", "/products/a%3Fx%3D1%26y?q=a%3Fx%3D1%26y"),
            ("a%23frag", "/products/a%23frag?q=a%23frag"),
            (
                "a%0D%0AHost:%20evil",
                "/products/a%0D%0AHost%3A%20evil?q=a%0D%0AHost%3A%20evil",
            ),
            ("%C3%A9", "/products/%C3%A9?q=%C3%A9"),
        ] {
            let got = render(&parts(), &[("id", raw)], |_| None).unwrap();
            assert_eq!(got, want, "{raw}");
            let (path, query) = got.split_once('?').unwrap();
            assert_eq!(path.matches('/').count(), 2, "{raw}");
            assert!(!query.contains('&') && !query.contains('#'), "{raw}");
        }
    }

    #[test]
    fn fields_of_earlier_calls() {
        let product = json!({"trackingId": "TRK/1", "n": 3, "o": {}});
        let parts = vec![
            UrlPart::Literal("/t/".into()),
            UrlPart::Field {
                call: "product".into(),
                path: "trackingId".into(),
            },
        ];
        assert_eq!(
            render(&parts, &[], |_| Some(&product)).unwrap(),
            "/t/TRK%2F1"
        );
        let missing = vec![UrlPart::Field {
            call: "product".into(),
            path: "nope".into(),
        }];
        assert!(
            render(&missing, &[], |_| Some(&product))
                .unwrap_err()
                .contains("missing")
        );
        let object = vec![UrlPart::Field {
            call: "product".into(),
            path: "o".into(),
        }];
        assert!(render(&object, &[], |_| Some(&product)).is_err());
    }
}
