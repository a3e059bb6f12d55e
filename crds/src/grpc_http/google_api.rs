//! `.proto` sources compiled in-process (protox): the Route's files, then
//! `google/api/http.proto` and `google/api/annotations.proto` (described here field by field,
//! so users need not ship them), then the well-known `google/protobuf/*` files.

use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
use prost_reflect::prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    OneofDescriptorProto,
};
use protox::file::{
    ChainFileResolver, DescriptorSetFileResolver, File, FileResolver, GoogleFileResolver,
};

/// The Route's own files, by name.
struct Sources(Vec<(String, String)>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.iter().find(|(n, _)| n == name) {
            Some((n, text)) => File::from_source(n, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

pub(super) fn compile(files: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(Sources(files.to_vec()));
    resolver.add(DescriptorSetFileResolver::new(FileDescriptorSet {
        file: vec![http_proto(), annotations_proto()],
    }));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_files(files.iter().map(|(n, _)| n.as_str()))
        .map_err(|e| format!("the .proto files do not compile: {e}"))?;
    Ok(compiler.encode_file_descriptor_set())
}

fn field(name: &str, number: i32, kind: Type, label: Label) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        json_name: Some(json_name(name)),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn message_field(name: &str, number: i32, type_name: &str, label: Label) -> FieldDescriptorProto {
    FieldDescriptorProto {
        type_name: Some(type_name.into()),
        ..field(name, number, Type::Message, label)
    }
}

fn json_name(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `google/api/http.proto`: `Http`, `HttpRule` and `CustomHttpPattern`.
fn http_proto() -> FileDescriptorProto {
    let in_pattern = |name: &str, number| FieldDescriptorProto {
        oneof_index: Some(0),
        ..field(name, number, Type::String, Label::Optional)
    };
    let rule = DescriptorProto {
        name: Some("HttpRule".into()),
        field: vec![
            field("selector", 1, Type::String, Label::Optional),
            in_pattern("get", 2),
            in_pattern("put", 3),
            in_pattern("post", 4),
            in_pattern("delete", 5),
            in_pattern("patch", 6),
            FieldDescriptorProto {
                oneof_index: Some(0),
                ..message_field(
                    "custom",
                    8,
                    ".google.api.CustomHttpPattern",
                    Label::Optional,
                )
            },
            field("body", 7, Type::String, Label::Optional),
            field("response_body", 12, Type::String, Label::Optional),
            message_field(
                "additional_bindings",
                11,
                ".google.api.HttpRule",
                Label::Repeated,
            ),
        ],
        oneof_decl: vec![OneofDescriptorProto {
            name: Some("pattern".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let custom = DescriptorProto {
        name: Some("CustomHttpPattern".into()),
        field: vec![
            field("kind", 1, Type::String, Label::Optional),
            field("path", 2, Type::String, Label::Optional),
        ],
        ..Default::default()
    };
    let http = DescriptorProto {
        name: Some("Http".into()),
        field: vec![
            message_field("rules", 1, ".google.api.HttpRule", Label::Repeated),
            field(
                "fully_decode_reserved_expansion",
                2,
                Type::Bool,
                Label::Optional,
            ),
        ],
        ..Default::default()
    };
    FileDescriptorProto {
        name: Some("google/api/http.proto".into()),
        package: Some("google.api".into()),
        message_type: vec![http, rule, custom],
        syntax: Some("proto3".into()),
        ..Default::default()
    }
}

/// `google/api/annotations.proto`: the `http` extension of `google.protobuf.MethodOptions`.
fn annotations_proto() -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("google/api/annotations.proto".into()),
        package: Some("google.api".into()),
        dependency: vec![
            "google/api/http.proto".into(),
            "google/protobuf/descriptor.proto".into(),
        ],
        extension: vec![FieldDescriptorProto {
            extendee: Some(".google.protobuf.MethodOptions".into()),
            ..message_field("http", 72_295_728, ".google.api.HttpRule", Label::Optional)
        }],
        syntax: Some("proto3".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = include_str!("../../../demo/proto/catalog.proto");

    #[test]
    fn the_demo_catalog_compiles_with_its_annotations() {
        let set = compile(&[("catalog.proto".into(), CATALOG.into())]).unwrap();
        let pool = super::super::descriptor_pool(&set).unwrap();
        let bindings = super::super::bindings(&pool, &["demo.Catalog".into()]).unwrap();
        let routes: Vec<_> = bindings
            .iter()
            .map(|b| format!("{} {:?} {}", b.http_method, b.template, b.grpc_path))
            .collect();
        assert_eq!(bindings.len(), 3, "{routes:?}");
        assert_eq!(bindings[0].grpc_path, "/demo.Catalog/GetProduct");
        assert_eq!(bindings[0].http_method, "GET");
        assert!(bindings[0].template.matches("/v1/products/2").is_some());
        assert_eq!(bindings[2].http_method, "POST");
        assert!(
            matches!(bindings[2].body, super::super::BodyTarget::Field(ref f) if f.name() == "product")
        );
    }

    #[test]
    fn bad_sources_and_annotations_are_refused_with_the_reason() {
        let e =
            compile(&[("x.proto".into(), "syntax = \"proto3\"; message {".into())]).unwrap_err();
        assert!(e.contains("do not compile"), "{e}");
        let missing_field = CATALOG.replace("body: \"product\"", "body: \"nope\"");
        let set = compile(&[("catalog.proto".into(), missing_field)]).unwrap();
        let pool = super::super::descriptor_pool(&set).unwrap();
        let e = super::super::bindings(&pool, &[]).unwrap_err();
        assert!(
            e.contains("body \"nope\" is not a field of demo.CreateProductRequest"),
            "{e}"
        );
        let e = super::super::bindings(&pool, &["demo.Other".into()]).unwrap_err();
        assert!(e.contains("no service demo.Other"), "{e}");
        assert!(super::super::descriptor_pool(b"\xff\xff").is_err());
    }
}
