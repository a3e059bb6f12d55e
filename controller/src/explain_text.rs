//! `kubectl frontdesk explain` as text: the admin API's `/explain` answer
//! ([`frontdesk_crds::explain`]) laid out for a person.

use std::fmt::Write;

use serde_json::Value;

/// The text `kubectl frontdesk explain` prints for an `/explain` answer.
pub fn render(e: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let _ = writeln!(
        out,
        "{} {}/{}, generation {}",
        s(&e["kind"]),
        s(&e["namespace"]),
        s(&e["name"]),
        e["generation"]
    );
    if let Some(served) = e["servedGeneration"].as_i64() {
        let _ = writeln!(
            out,
            "  not accepted: generation {served} is served in its place"
        );
    }
    for c in e["conditions"].as_array().into_iter().flatten() {
        let status = if c["status"].as_bool() == Some(true) {
            "True"
        } else {
            "False"
        };
        let _ = writeln!(
            out,
            "  {:<14} {:<5} {:<22} {}",
            s(&c["type"]),
            status,
            s(&c["reason"]),
            s(&c["message"])
        );
    }
    for g in e["gateways"].as_array().into_iter().flatten() {
        let hosts = join(&g["hosts"], "any host");
        let ports = join(&g["ports"], "every port");
        let _ = writeln!(out, "gateway {} ({hosts}; {ports})", s(&g["gateway"]));
        for rule in g["rules"].as_array().into_iter().flatten() {
            let matches: Vec<String> = rule["matches"]
                .as_array()
                .into_iter()
                .flatten()
                .map(match_text)
                .collect();
            let _ = writeln!(out, "  rule {}: {}", s(&rule["id"]), matches.join(" | "));
            let action = s(&rule["action"]);
            let backends: Vec<String> = rule["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    format!(
                        "{} (weight {}): {}",
                        s(&b["name"]),
                        b["weight"],
                        join(&b["endpoints"], "no endpoint ready")
                    )
                })
                .collect();
            if backends.is_empty() {
                let _ = writeln!(out, "    {action}");
            } else {
                let _ = writeln!(out, "    {action} to {}", backends.join("; "));
            }
            if let Some(why) = rule["unavailable"].as_str() {
                let _ = writeln!(out, "    answers 503: {why}");
            }
            let policies = join(&rule["policies"], "");
            if !policies.is_empty() {
                let _ = writeln!(out, "    policies, in order: {policies}");
            }
            for section in rule["sections"].as_array().into_iter().flatten() {
                let overrides = join(&section["overrides"], "");
                let overriding = if overrides.is_empty() {
                    String::new()
                } else {
                    format!(", overriding {overrides}")
                };
                let _ = writeln!(
                    out,
                    "      {:<18} from {}{overriding}",
                    s(&section["section"]),
                    s(&section["from"])
                );
            }
        }
    }
    for g in e["replicaProxies"].as_array().into_iter().flatten() {
        let proxies: Vec<String> = g["proxies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let state = if p["serves"].as_bool() == Some(true) {
                    "serves it"
                } else {
                    "not yet"
                };
                format!("{} {state} (at version {})", s(&p["proxy"]), p["acked"])
            })
            .collect();
        let _ = writeln!(
            out,
            "proxies of gateway {} on this replica (generation {}): {}",
            s(&g["gateway"]),
            g["generation"],
            if proxies.is_empty() {
                "none connected".to_string()
            } else {
                proxies.join("; ")
            }
        );
    }
    out
}

/// `a, b, c`, or `none` for an empty or missing list.
fn join(list: &Value, none: &str) -> String {
    let items: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
    }
}

/// `Prefix /orders GET,POST`: a snapshot match, shortly.
fn match_text(m: &Value) -> String {
    let path = &m["path"];
    // As the user writes it in a Route.
    let kind = match path["type"].as_str().unwrap_or_default() {
        "exact" => "Exact",
        "prefix" => "PathPrefix",
        "template" => "Template",
        "regularExpression" => "RegularExpression",
        other => other,
    };
    let mut text = format!("{kind} {}", path["value"].as_str().unwrap_or_default());
    let methods = join(&m["methods"], "");
    if !methods.is_empty() {
        text.push(' ');
        text.push_str(&methods.replace(", ", ","));
    }
    for key in ["headers", "query"] {
        if m[key].as_array().is_some_and(|a| !a.is_empty()) {
            let _ = write!(text, " +{key}");
        }
    }
    text
}
