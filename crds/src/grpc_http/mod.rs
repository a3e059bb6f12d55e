//! REST/JSON to gRPC: which HTTP requests map onto which gRPC methods, read from a descriptor
//! set's `google.api.http` annotations. Shared by the compiler (which checks a Route's
//! descriptors and refuses them with the reason) and the proxy (which serves them).
//!
//! - [`descriptor_pool`] reads a `FileDescriptorSet` (what `protoc --include_imports
//!   --descriptor_set_out` writes, or [`compile_protos`] makes from `.proto` sources);
//! - [`bindings`] lists the methods of the chosen services with their HTTP rules (the rule
//!   itself and its `additional_bindings`), each with its parsed [`template::Template`].

mod google_api;
pub mod template;

use prost::Message;
use prost_reflect::{DescriptorPool, FieldDescriptor, MessageDescriptor, MethodDescriptor};

pub use template::Template;

/// The `google.api.http` option of a method, read from the method's encoded options (the
/// extension is field 72295728 of `google.protobuf.MethodOptions`; other fields are skipped).
#[derive(Clone, PartialEq, Message)]
struct MethodOptionsHttp {
    #[prost(message, optional, tag = "72295728")]
    http: Option<HttpRule>,
}

/// `google.api.HttpRule`, as far as transcoding reads it. Its pattern is a oneof of the
/// string fields 2-6 and the message field 8.
#[derive(Clone, PartialEq, Message)]
struct HttpRule {
    #[prost(string, optional, tag = "2")]
    get: Option<String>,
    #[prost(string, optional, tag = "3")]
    put: Option<String>,
    #[prost(string, optional, tag = "4")]
    post: Option<String>,
    #[prost(string, optional, tag = "5")]
    delete: Option<String>,
    #[prost(string, optional, tag = "6")]
    patch: Option<String>,
    #[prost(message, optional, tag = "8")]
    custom: Option<CustomHttpPattern>,
    #[prost(string, tag = "7")]
    body: String,
    #[prost(string, tag = "12")]
    response_body: String,
    #[prost(message, repeated, tag = "11")]
    additional_bindings: Vec<HttpRule>,
}

#[derive(Clone, PartialEq, Message)]
struct CustomHttpPattern {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, tag = "2")]
    path: String,
}

/// Where a request's JSON body goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyTarget {
    /// No body (`GET`, `DELETE`...): every field not in the path comes from the query.
    None,
    /// `body: "*"`: the whole request message; the query binds nothing.
    Whole,
    /// `body: "field"`: that field of the request message.
    Field(FieldDescriptor),
}

/// One HTTP mapping of one gRPC method.
#[derive(Clone, Debug)]
pub struct Binding {
    pub method: MethodDescriptor,
    /// `/package.Service/Method`.
    pub grpc_path: String,
    /// `GET`, `POST`... (`custom` kinds as written).
    pub http_method: String,
    pub template: Template,
    /// The fields the template's variables set, each as its path of fields from the request
    /// message.
    pub bound_fields: Vec<Vec<FieldDescriptor>>,
    pub body: BodyTarget,
    /// `response_body`: the field of the answer sent as the body, instead of the whole answer.
    pub response_body: Option<FieldDescriptor>,
}

/// Reads a `FileDescriptorSet`.
pub fn descriptor_pool(bytes: &[u8]) -> Result<DescriptorPool, String> {
    DescriptorPool::decode(bytes).map_err(|e| format!("not a valid FileDescriptorSet: {e}"))
}

/// Compiles `.proto` sources (name, text) into a `FileDescriptorSet` with their imports.
/// `google/api/annotations.proto` and `google/api/http.proto` are known without being given,
/// as are the well-known `google/protobuf/*.proto` files.
pub fn compile_protos(files: &[(String, String)]) -> Result<Vec<u8>, String> {
    google_api::compile(files)
}

/// The HTTP bindings of the methods of `services` (every service of the pool with at least
/// one annotated method when empty). A service that is missing, or has no annotated method,
/// is an error; so is an annotation that cannot be served.
pub fn bindings(pool: &DescriptorPool, services: &[String]) -> Result<Vec<Binding>, String> {
    let chosen: Vec<_> = if services.is_empty() {
        pool.services().collect()
    } else {
        services
            .iter()
            .map(|name| {
                pool.get_service_by_name(name)
                    .ok_or_else(|| format!("the descriptors have no service {name}"))
            })
            .collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    for service in &chosen {
        let before = out.len();
        for method in service.methods() {
            let options = method.options().encode_to_vec();
            let Some(rule) = MethodOptionsHttp::decode(options.as_slice())
                .map_err(|e| format!("{}: its options do not decode: {e}", method.full_name()))?
                .http
            else {
                continue;
            };
            if method.is_client_streaming() {
                return Err(format!(
                    "{}: a client-streaming method cannot be called from one HTTP request",
                    method.full_name()
                ));
            }
            for r in std::iter::once(&rule).chain(&rule.additional_bindings) {
                out.push(binding(&method, r)?);
            }
        }
        if services.is_empty() && out.len() == before {
            continue;
        }
        if out.len() == before {
            return Err(format!(
                "service {} has no method with a google.api.http annotation",
                service.full_name()
            ));
        }
    }
    if out.is_empty() {
        return Err("no method of the descriptors has a google.api.http annotation".into());
    }
    Ok(out)
}

fn binding(method: &MethodDescriptor, rule: &HttpRule) -> Result<Binding, String> {
    let name = method.full_name();
    let (http_method, path) = match rule {
        HttpRule { get: Some(p), .. } => ("GET", p.as_str()),
        HttpRule { put: Some(p), .. } => ("PUT", p.as_str()),
        HttpRule { post: Some(p), .. } => ("POST", p.as_str()),
        HttpRule {
            delete: Some(p), ..
        } => ("DELETE", p.as_str()),
        HttpRule { patch: Some(p), .. } => ("PATCH", p.as_str()),
        HttpRule {
            custom: Some(c), ..
        } => (c.kind.as_str(), c.path.as_str()),
        _ => return Err(format!("{name}: its google.api.http rule has no pattern")),
    };
    let template = Template::parse(path).map_err(|e| format!("{name}: {e}"))?;
    let input = method.input();
    let mut bound_fields = Vec::new();
    for field in template.fields() {
        let fields = field_path(&input, field).map_err(|e| format!("{name}: {path}: {e}"))?;
        let last = fields
            .last()
            .ok_or_else(|| format!("{name}: {path}: an empty field path"))?;
        if last.is_list() || last.is_map() || matches!(last.kind(), prost_reflect::Kind::Message(_))
        {
            return Err(format!(
                "{name}: {path}: {} is not a single scalar field, which a path segment can set",
                field.join(".")
            ));
        }
        bound_fields.push(fields);
    }
    let body = match rule.body.as_str() {
        "" => BodyTarget::None,
        "*" => BodyTarget::Whole,
        field => BodyTarget::Field(input.get_field_by_name(field).ok_or_else(|| {
            format!(
                "{name}: body {field:?} is not a field of {}",
                input.full_name()
            )
        })?),
    };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        field => Some(method.output().get_field_by_name(field).ok_or_else(|| {
            format!(
                "{name}: response_body {field:?} is not a field of {}",
                method.output().full_name()
            )
        })?),
    };
    Ok(Binding {
        grpc_path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        method: method.clone(),
        http_method: http_method.to_string(),
        template,
        bound_fields,
        body,
        response_body,
    })
}

/// The fields a dotted path names (proto or JSON names), from the outermost, through nested
/// messages.
pub fn field_path(
    message: &MessageDescriptor,
    path: &[String],
) -> Result<Vec<FieldDescriptor>, String> {
    let mut message = message.clone();
    let mut out = Vec::with_capacity(path.len());
    for (i, part) in path.iter().enumerate() {
        let field = message
            .get_field_by_name(part)
            .or_else(|| message.get_field_by_json_name(part))
            .ok_or_else(|| format!("{part:?} is not a field of {}", message.full_name()))?;
        if i + 1 < path.len() {
            message = match field.kind() {
                prost_reflect::Kind::Message(m) if !field.is_list() && !field.is_map() => m,
                _ => return Err(format!("{part:?} is not a message field")),
            };
        }
        out.push(field);
    }
    if out.is_empty() {
        return Err("an empty field path".into());
    }
    Ok(out)
}
