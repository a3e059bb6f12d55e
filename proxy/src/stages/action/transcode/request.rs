//! The gRPC call's message, made of the JSON body, the query parameters and the path's
//! variables (see the module above).

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use frontdesk_crds::grpc_http::template::Bound;
use frontdesk_crds::grpc_http::{self, Binding, BodyTarget};
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value};

/// The request message: the body (as the binding says), then the path's variables, then the
/// query for what neither set.
pub(super) fn request_message(
    binding: &Binding,
    vars: &[Bound],
    query: Option<&str>,
    json: &[u8],
) -> Result<DynamicMessage, String> {
    let input = binding.method.input();
    let json = if json.trim_ascii().is_empty() {
        b"{}".as_slice()
    } else {
        json
    };
    let mut message = match &binding.body {
        BodyTarget::None => DynamicMessage::new(input.clone()),
        BodyTarget::Whole => {
            let mut de = serde_json::Deserializer::from_slice(json);
            let message = DynamicMessage::deserialize(input.clone(), &mut de)
                .map_err(|e| format!("the body is not a {}: {e}", input.full_name()))?;
            de.end()
                .map_err(|e| format!("the body has more than one JSON value: {e}"))?;
            message
        }
        BodyTarget::Field(field) => {
            let value: serde_json::Value =
                serde_json::from_slice(json).map_err(|e| format!("the body is not JSON: {e}"))?;
            let wrapped = serde_json::json!({ field.json_name(): value });
            DynamicMessage::deserialize(input.clone(), wrapped).map_err(|e| {
                format!(
                    "the body is not a {} {}: {e}",
                    field.name(),
                    kind_name(field)
                )
            })?
        }
    };
    if binding.body != BodyTarget::Whole
        && let Some(query) = query
    {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            // Parameters that name no field are left alone (tracking parameters, say); those
            // that name a field the path or the body binds, however spelled, too.
            let Ok(fields) = grpc_http::field_path(&input, &path) else {
                continue;
            };
            if binding
                .bound_fields
                .iter()
                .any(|b| fields.starts_with(b) || b.starts_with(&fields))
                || matches!(&binding.body, BodyTarget::Field(f) if fields[0] == *f)
            {
                continue;
            }
            set_path(&mut message, &path, &value, false)?;
        }
    }
    // The path's variables last: nothing else may change what the path says.
    for (path, value) in vars {
        set_path(&mut message, path, value, true)?;
    }
    Ok(message)
}

fn kind_name(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Message(m) => m.full_name().to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Sets the field at `path` from its text (`replace`: a path variable, which wins over the
/// body; else a query parameter, appended to a repeated field).
fn set_path(
    message: &mut DynamicMessage,
    path: &[String],
    text: &str,
    replace: bool,
) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("an empty field path")?;
    let desc = message.descriptor();
    let field = desc
        .get_field_by_name(first)
        .or_else(|| desc.get_field_by_json_name(first))
        .ok_or_else(|| format!("{first:?} is not a field of {}", desc.full_name()))?;
    if !rest.is_empty() {
        let Value::Message(inner) = message.get_field_mut(&field) else {
            return Err(format!("{first:?} is not a message field"));
        };
        return set_path(inner, rest, text, replace);
    }
    let value = scalar(&field, text).map_err(|why| format!("{}: {why}", path.join(".")))?;
    if field.is_list() {
        match message.get_field_mut(&field) {
            Value::List(list) if !replace => list.push(value),
            slot => *slot = Value::List(vec![value]),
        }
    } else {
        message.set_field(&field, value);
    }
    Ok(())
}

/// A path variable's or query parameter's text as the field's value.
fn scalar(field: &FieldDescriptor, s: &str) -> Result<Value, String> {
    let number = |what| format!("{s:?} is not {what}");
    Ok(match field.kind() {
        Kind::String => Value::String(s.to_string()),
        Kind::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
                .map_err(|_| number("base64"))?
                .into(),
        ),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(s.parse().map_err(|_| number("an integer"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(s.parse().map_err(|_| number("an integer"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(s.parse().map_err(|_| number("an unsigned integer"))?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Value::U64(s.parse().map_err(|_| number("an unsigned integer"))?)
        }
        Kind::Float => Value::F32(s.parse().map_err(|_| number("a number"))?),
        Kind::Double => Value::F64(s.parse().map_err(|_| number("a number"))?),
        Kind::Bool => Value::Bool(match s {
            "true" => true,
            "false" => false,
            _ => return Err(number("true or false")),
        }),
        Kind::Enum(e) => Value::EnumNumber(match e.get_value_by_name(s) {
            Some(v) => v.number(),
            None => s
                .parse()
                .map_err(|_| format!("{s:?} is not a value of {}", e.full_name()))?,
        }),
        Kind::Message(m) => {
            return Err(format!(
                "a {} cannot be given in a path or query",
                m.full_name()
            ));
        }
    })
}

/// A message framed for gRPC (uncompressed).
pub(super) fn frame(message: &DynamicMessage) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    message.encode_raw(&mut out);
    out.freeze()
}
