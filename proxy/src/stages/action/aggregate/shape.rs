//! Shaping a call's JSON answer: `extract` one field, or `select` fields (dot paths into
//! objects, applied to every element of arrays), and merging the results into one answer.

use serde_json::{Map, Value};

/// The value at a dot path (through objects; not into arrays).
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = v;
    for p in path.split('.') {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// `extract` then `select`, as configured.
pub fn shape(v: Value, select: &[String], extract: Option<&str>) -> Value {
    let v = match extract {
        Some(path) => lookup(&v, path).cloned().unwrap_or(Value::Null),
        None => v,
    };
    if select.is_empty() {
        return v;
    }
    let paths: Vec<Vec<&str>> = select.iter().map(|s| s.split('.').collect()).collect();
    let refs: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    pick(&v, &refs)
}

/// Keeps the members named by `paths` (each a list of names).
fn pick(v: &Value, paths: &[&[&str]]) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| pick(i, paths)).collect()),
        Value::Object(m) => {
            let mut out = Map::new();
            for path in paths {
                let Some((first, rest)) = path.split_first() else {
                    continue;
                };
                let Some(child) = m.get(*first) else { continue };
                if rest.is_empty() {
                    out.insert((*first).to_string(), child.clone());
                    continue;
                }
                let deeper: Vec<&[&str]> = paths
                    .iter()
                    .filter(|p| p.first() == Some(first) && p.len() > 1)
                    .map(|p| &p[1..])
                    .collect();
                if !out.contains_key(*first) {
                    out.insert((*first).to_string(), pick(child, &deeper));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// One call's place in the answer.
pub struct Part {
    pub key: String,
    /// `None` when the call failed.
    pub value: Option<Value>,
}

/// Nested: `{key: value}`. Flat: object members side by side, the earlier call keeping a
/// member on a collision (returned as the second value); a non-object result stays under its
/// key. Failed calls are `null` under their key in both.
pub fn merge(parts: Vec<Part>, flat: bool) -> (Map<String, Value>, Vec<String>) {
    let mut out = Map::new();
    let mut collisions = Vec::new();
    for Part { key, value } in parts {
        match value {
            Some(Value::Object(m)) if flat => {
                for (k, v) in m {
                    if out.contains_key(&k) {
                        collisions.push(format!(
                            "member {k:?} of {key} is already set by an earlier call"
                        ));
                    } else {
                        out.insert(k, v);
                    }
                }
            }
            value => {
                if out.contains_key(&key) {
                    collisions.push(format!("member {key:?} is already set by an earlier call"));
                } else {
                    out.insert(key, value.unwrap_or(Value::Null));
                }
            }
        }
    }
    (out, collisions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn select_nested_paths_and_arrays() {
        let v = json!({"average": 4.5, "count": 2, "items": [{"stars": 5, "text": "x", "by": {"name": "a", "id": 1}}, {"stars": 4, "text": "y"}]});
        assert_eq!(
            shape(
                v.clone(),
                &s(&["average", "items.stars", "items.by.name"]),
                None
            ),
            json!({"average": 4.5, "items": [{"stars": 5, "by": {"name": "a"}}, {"stars": 4}]})
        );
        assert_eq!(shape(v.clone(), &[], Some("items")), v["items"]);
        assert_eq!(
            shape(v.clone(), &s(&["stars"]), Some("items")),
            json!([{"stars": 5}, {"stars": 4}])
        );
        assert_eq!(shape(v.clone(), &[], Some("nope")), Value::Null);
        assert_eq!(shape(json!([1, 2]), &s(&["a"]), None), json!([1, 2]));
    }

    #[test]
    fn nested_and_flat_merges() {
        let parts = || {
            vec![
                Part {
                    key: "product".into(),
                    value: Some(json!({"id": "1", "name": "x"})),
                },
                Part {
                    key: "stock".into(),
                    value: Some(json!(7)),
                },
                Part {
                    key: "reviews".into(),
                    value: None,
                },
                Part {
                    key: "extra".into(),
                    value: Some(json!({"name": "y", "color": "red"})),
                },
            ]
        };
        let (nested, c) = merge(parts(), false);
        assert!(c.is_empty());
        assert_eq!(
            Value::Object(nested),
            json!({"product": {"id": "1", "name": "x"}, "stock": 7, "reviews": null, "extra": {"name": "y", "color": "red"}})
        );
        let (flat, c) = merge(parts(), true);
        assert_eq!(
            Value::Object(flat),
            json!({"id": "1", "name": "x", "stock": 7, "reviews": null, "color": "red"})
        );
        assert_eq!(
            c,
            ["member \"name\" of extra is already set by an earlier call"]
        );
    }
}
