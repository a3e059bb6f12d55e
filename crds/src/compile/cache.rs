//! A Policy's `cache` section, lowered to the snapshot's [`snap::Cache`]: durations in
//! milliseconds, defaults filled in, header names lower-cased, a mistake named with its field.

use frontdesk_snapshot as snap;

use crate::diagnostic::Diagnostics;
use crate::policy::CacheSpec;

pub(super) fn lower_cache(p: &str, spec: &CacheSpec, d: &mut Diagnostics) -> Option<snap::Cache> {
    let before = d.0.len();
    let mut duration = |field: &str, value: &Option<String>| -> Option<u64> {
        let value = value.as_ref()?;
        match humantime::parse_duration(value) {
            Ok(t) if t.as_millis() <= u128::from(snap::MAX_CACHE_DURATION_MS) => {
                Some(t.as_millis() as u64)
            }
            Ok(_) => {
                d.push(format!("{p}.{field}"), "must be at most a year");
                None
            }
            Err(e) => {
                d.push(
                    format!("{p}.{field}"),
                    format!("{value:?} is not a duration like 30s: {e}"),
                );
                None
            }
        }
    };
    let ttl_ms = duration("ttl", &spec.ttl).unwrap_or(snap::DEFAULT_CACHE_TTL_MS);
    let max_ttl_ms = duration("maxTtl", &spec.max_ttl).unwrap_or(snap::DEFAULT_CACHE_MAX_TTL_MS);
    let stale_while_revalidate_ms = duration("staleWhileRevalidate", &spec.stale_while_revalidate);
    let stale_if_error_ms = duration("staleIfError", &spec.stale_if_error);
    if max_ttl_ms == 0 {
        d.push(format!("{p}.maxTtl"), "must be longer than 0s");
    }
    let methods = if spec.methods.is_empty() {
        vec!["GET".to_string(), "HEAD".to_string()]
    } else {
        let mut methods = Vec::new();
        for (i, m) in spec.methods.iter().enumerate() {
            let upper = m.to_ascii_uppercase();
            if upper != "GET" && upper != "HEAD" {
                d.push(
                    format!("{p}.methods[{i}]"),
                    format!("{m:?}: only GET and HEAD answers are cached"),
                );
            } else if !methods.contains(&upper) {
                methods.push(upper);
            }
        }
        methods
    };
    let mut vary_headers = Vec::new();
    for (i, h) in spec.vary_headers.iter().enumerate() {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            d.push(
                format!("{p}.varyHeaders[{i}]"),
                format!("{h:?} is not a header name"),
            );
            continue;
        }
        let h = h.to_ascii_lowercase();
        if !vary_headers.contains(&h) {
            vary_headers.push(h);
        }
    }
    let query = match &spec.query_parameters {
        None => snap::CacheQuery::All,
        Some(q) if !q.ignore.is_empty() && !q.only.is_empty() => {
            d.push(
                format!("{p}.queryParameters"),
                "set ignore or only, not both",
            );
            snap::CacheQuery::All
        }
        Some(q) if !q.only.is_empty() => snap::CacheQuery::Only(q.only.clone()),
        Some(q) => snap::CacheQuery::Ignore(q.ignore.clone()),
    };
    let max_entry_bytes = spec
        .max_entry_bytes
        .unwrap_or(snap::DEFAULT_CACHE_MAX_ENTRY_BYTES);
    if max_entry_bytes == 0 {
        d.push(format!("{p}.maxEntryBytes"), "must be greater than 0");
    }
    let cache = snap::Cache {
        ttl_ms,
        max_ttl_ms,
        methods,
        vary_headers,
        query,
        per_consumer: spec.per_consumer.unwrap_or(false),
        stale_while_revalidate_ms,
        stale_if_error_ms,
        max_entry_bytes,
        global: spec.scope == Some(crate::policy::LimitScopeSpec::Global),
    };
    (d.0.len() == before).then_some(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(spec: CacheSpec) -> Result<snap::Cache, Vec<(String, String)>> {
        let mut d = Diagnostics::default();
        let out = lower_cache("spec.cache", &spec, &mut d);
        out.ok_or_else(|| {
            d.0.iter()
                .map(|x| (x.field.clone(), x.message.clone()))
                .collect()
        })
    }

    #[test]
    fn an_empty_section_caches_get_and_head_for_a_minute() {
        let c = lower(CacheSpec::default()).unwrap();
        assert_eq!(c.ttl_ms, 60_000);
        assert_eq!(c.max_ttl_ms, 24 * 3_600_000);
        assert_eq!(c.methods, ["GET", "HEAD"]);
        assert_eq!(c.query, snap::CacheQuery::All);
        assert_eq!(c.max_entry_bytes, 1024 * 1024);
        assert!(!c.per_consumer);
        assert!(!c.global);
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn fields_are_lowered_and_normalised() {
        let c = lower(CacheSpec {
            ttl: Some("30s".into()),
            max_ttl: Some("1h".into()),
            methods: vec!["get".into()],
            vary_headers: vec!["Accept-Language".into(), "accept-language".into()],
            query_parameters: Some(crate::policy::CacheQuerySpec {
                ignore: vec!["utm_source".into()],
                only: vec![],
            }),
            per_consumer: Some(true),
            stale_while_revalidate: Some("10s".into()),
            stale_if_error: Some("5m".into()),
            max_entry_bytes: Some(4096),
            scope: Some(crate::policy::LimitScopeSpec::Global),
        })
        .unwrap();
        assert_eq!(c.ttl_ms, 30_000);
        assert_eq!(c.max_ttl_ms, 3_600_000);
        assert_eq!(c.methods, ["GET"]);
        assert_eq!(c.vary_headers, ["accept-language"]);
        assert_eq!(c.query, snap::CacheQuery::Ignore(vec!["utm_source".into()]));
        assert!(c.per_consumer);
        assert_eq!(c.stale_while_revalidate_ms, Some(10_000));
        assert_eq!(c.stale_if_error_ms, Some(300_000));
        assert_eq!(c.max_entry_bytes, 4096);
        assert!(c.global);
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn mistakes_are_named_with_their_field() {
        let errors = lower(CacheSpec {
            ttl: Some("soon".into()),
            max_ttl: Some("0s".into()),
            methods: vec!["POST".into()],
            vary_headers: vec!["bad header".into()],
            query_parameters: Some(crate::policy::CacheQuerySpec {
                ignore: vec!["a".into()],
                only: vec!["b".into()],
            }),
            stale_if_error: Some("400days".into()),
            max_entry_bytes: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.cache.ttl",
                "spec.cache.staleIfError",
                "spec.cache.maxTtl",
                "spec.cache.methods[0]",
                "spec.cache.varyHeaders[0]",
                "spec.cache.queryParameters",
                "spec.cache.maxEntryBytes",
            ],
            "{errors:?}"
        );
        assert!(errors[3].1.contains("only GET and HEAD"), "{errors:?}");
    }
}
