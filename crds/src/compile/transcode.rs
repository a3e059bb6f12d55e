//! A rule's `grpcTranscode`, lowered: its descriptors read from the ConfigMap or Secret it
//! names (or its `.proto` sources compiled), checked the way the proxy will use them
//! ([`crate::grpc_http::bindings`]), and carried in the snapshot as a `FileDescriptorSet`.
//! A reference that is missing is unresolved: `Ok(None)`, and the rule answers 503 until it
//! appears (its requests are never sent untranslated). A descriptor set that cannot be served
//! refuses the Route with the reason.

use base64::Engine;
use frontdesk_snapshot as snap;

use super::lower::ResolveService;
use super::policy::secret_value;
use crate::diagnostic::Diagnostics;
use crate::route::{GrpcTranscodeSpec, TranscodeStreamingSpec};

/// `p` is the field path of `grpcTranscode`. `Ok(None)` when a reference is missing (said in
/// `unresolved`), `Err(())` when it cannot be served (said in `d`).
pub(super) fn lower_transcode(
    p: &str,
    namespace: &str,
    spec: &GrpcTranscodeSpec,
    refs: &dyn ResolveService,
    d: &mut Diagnostics,
    unresolved: &mut Diagnostics,
) -> Result<Option<snap::GrpcTranscode>, ()> {
    let set = match (&spec.descriptor_set_ref, &spec.protos_config_map) {
        (Some(r), None) => {
            let field = format!("{p}.descriptorSetRef");
            let kind = r.kind.as_deref().unwrap_or("ConfigMap");
            let bytes = match kind {
                "ConfigMap" => refs
                    .config_map(namespace, &r.name)
                    .ok_or_else(|| format!("ConfigMap {namespace}/{} not found", r.name))
                    .and_then(|m| {
                        m.binary_data
                            .as_ref()
                            .and_then(|b| b.get(&r.key))
                            .map(|b| b.0.clone())
                            .ok_or_else(|| {
                                format!(
                                    "ConfigMap {namespace}/{} has no binaryData key {:?}",
                                    r.name, r.key
                                )
                            })
                    }),
                "Secret" => refs
                    .secret(namespace, &r.name)
                    .ok_or_else(|| format!("Secret {namespace}/{} not found", r.name))
                    .and_then(|s| {
                        secret_value(s, &r.key).ok_or_else(|| {
                            format!("Secret {namespace}/{} has no key {:?}", r.name, r.key)
                        })
                    }),
                other => {
                    d.push(
                        format!("{field}.kind"),
                        format!("{other:?} is not ConfigMap or Secret"),
                    );
                    return Err(());
                }
            };
            match bytes {
                Ok(b) => b,
                Err(why) => {
                    unresolved.push(field, why);
                    return Ok(None);
                }
            }
        }
        (None, Some(name)) => {
            let field = format!("{p}.protosConfigMap");
            let Some(map) = refs.config_map(namespace, name) else {
                unresolved.push(field, format!("ConfigMap {namespace}/{name} not found"));
                return Ok(None);
            };
            let sources: Vec<(String, String)> = map
                .data
                .iter()
                .flatten()
                .filter(|(k, _)| k.ends_with(".proto"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if sources.is_empty() {
                d.push(
                    field,
                    format!("ConfigMap {namespace}/{name} has no .proto key"),
                );
                return Err(());
            }
            match crate::grpc_http::compile_protos(&sources) {
                Ok(set) => set,
                Err(why) => {
                    d.push(field, format!("ConfigMap {namespace}/{name}: {why}"));
                    return Err(());
                }
            }
        }
        _ => {
            d.push(
                p.to_string(),
                "set exactly one of descriptorSetRef and protosConfigMap",
            );
            return Err(());
        }
    };
    let checked = crate::grpc_http::descriptor_pool(&set)
        .and_then(|pool| crate::grpc_http::bindings(&pool, &spec.services));
    if let Err(why) = checked {
        d.push(p.to_string(), why);
        return Err(());
    }
    Ok(Some(snap::GrpcTranscode {
        descriptor_set: base64::engine::general_purpose::STANDARD.encode(&set),
        services: spec.services.clone(),
        streaming: match spec.streaming {
            None | Some(TranscodeStreamingSpec::JsonArray) => snap::TranscodeStreaming::JsonArray,
            Some(TranscodeStreamingSpec::NewlineDelimited) => {
                snap::TranscodeStreaming::NewlineDelimited
            }
        },
    }))
}
