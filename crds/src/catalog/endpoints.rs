//! The catalog's fast path: an update whose changed files hold EndpointSlices alone, before
//! and after, changes nothing the compiler decides but the endpoints behind Service backends.
//! It is read without a compile, and the caller moves what it publishes by endpoint changes
//! ([`frontdesk_snapshot::Snapshot::endpoint_changes`]).

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{Catalog, text_hash};
use crate::compile::ServiceIndex;
use crate::manifests::{Object, parse_file};

/// The Services and EndpointSlices of the files after an endpoints-only update.
pub struct EndpointsNow {
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
}

impl EndpointsNow {
    /// What answers, per backend name, its endpoints now.
    pub fn index(&self) -> ServiceIndex<'_> {
        ServiceIndex::new(&self.services, &self.slices)
    }
}

impl Catalog {
    /// When every file that differs from the last update (new, gone or edited) holds only
    /// EndpointSlices, before and after, and parses cleanly: takes the files in, as
    /// [`Catalog::update`] would, and returns the Services and EndpointSlices they now hold.
    /// Otherwise changes nothing and returns `None` (the caller runs [`Catalog::update`]).
    pub fn update_endpoints(
        &mut self,
        files: &[(String, Result<String, String>)],
    ) -> Option<EndpointsNow> {
        let only_slices = |objects: &[(Object, crate::manifests::Origin)]| {
            objects
                .iter()
                .all(|(o, _)| matches!(o, Object::EndpointSlice(_)))
        };
        let mut parsed = Vec::new();
        for (name, text) in files {
            let text = text.as_ref().ok()?;
            let hash = text_hash(text);
            if self.clean.get(name).is_some_and(|(h, _)| *h == hash) {
                continue;
            }
            if !self
                .files
                .get(name)
                .is_none_or(|before| only_slices(before))
            {
                return None;
            }
            let file = parse_file(name, text);
            if !file.errors.is_empty() || !only_slices(&file.objects) {
                return None;
            }
            parsed.push((name.clone(), hash, file));
        }
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|name| !files.iter().any(|(n, _)| n == *name))
            .cloned()
            .collect();
        if gone.iter().any(|name| !only_slices(&self.files[name])) {
            return None;
        }
        if parsed.is_empty() && gone.is_empty() {
            return None;
        }
        for name in gone {
            self.files.remove(&name);
            self.clean.remove(&name);
        }
        for (name, hash, file) in parsed {
            self.clean.insert(name.clone(), (hash, file.skipped));
            self.files.insert(name, file.objects);
        }
        // One object per key, the first file in name order winning, as for a compile.
        let mut names: Vec<&String> = self.files.keys().collect();
        names.sort();
        let mut seen = std::collections::BTreeSet::new();
        let mut now = EndpointsNow {
            services: Vec::new(),
            slices: Vec::new(),
        };
        for (object, _) in names.into_iter().flat_map(|n| &self.files[n]) {
            if !seen.insert(object.key()) {
                continue;
            }
            match object {
                Object::Service(s) => now.services.push((**s).clone()),
                Object::EndpointSlice(s) => now.slices.push((**s).clone()),
                _ => {}
            }
        }
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "apiVersion: frontdesk.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  gateways: [public]\n  \
                         rules:\n    - backends: [{service: web, port: 80}]\n";
    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  ports: [{port: 80}]\n";

    fn slice(name: &str, ip: &str) -> Result<String, String> {
        Ok(format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: default\n  \
             labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\n\
             ports: [{{port: 8080}}]\nendpoints: [{{addresses: [\"{ip}\"]}}]\n"
        ))
    }

    fn files(slices: &[(&str, Result<String, String>)]) -> Vec<(String, Result<String, String>)> {
        let mut all = vec![(
            "route.yaml".to_string(),
            Ok(format!("{ROUTE}---\n{SERVICE}")),
        )];
        all.extend(slices.iter().map(|(n, t)| (n.to_string(), t.clone())));
        all
    }

    #[test]
    fn slice_files_alone_change_by_the_fast_path() {
        let mut c = Catalog::default();
        let first = files(&[("slices.yaml", slice("web-1", "10.0.0.1"))]);
        let u = c.update(&first);
        assert!(u.problems.is_empty(), "{:?}", u.problems);
        assert!(c.update_endpoints(&first).is_none(), "nothing changed");

        let edited = files(&[
            ("slices.yaml", slice("web-1", "10.0.0.2")),
            ("more.yaml", slice("web-2", "10.0.0.3")),
        ]);
        let now = c.update_endpoints(&edited).expect("slices alone changed");
        assert_eq!(
            now.index().backend_endpoints("service/default/web:80"),
            Some(vec![
                "10.0.0.2:8080".to_string(),
                "10.0.0.3:8080".to_string()
            ])
        );
        assert_eq!(
            now.index().backend_endpoints("service/default/gone:80"),
            None
        );
        // Taken in: a compile now serves the same endpoints.
        let u = c.update(&edited);
        let snapshot = u.output.snapshot("public");
        let endpoints: Vec<&Vec<String>> = snapshot.backends().map(|b| &b.endpoints).collect();
        assert_eq!(
            endpoints,
            [&vec![
                "10.0.0.2:8080".to_string(),
                "10.0.0.3:8080".to_string()
            ]]
        );

        let gone = files(&[("slices.yaml", slice("web-1", "10.0.0.2"))]);
        let now = c.update_endpoints(&gone).expect("a slice file removed");
        assert_eq!(
            now.index().backend_endpoints("service/default/web:80"),
            Some(vec!["10.0.0.2:8080".to_string()])
        );
    }

    #[test]
    fn anything_else_goes_through_a_compile_and_changes_nothing_here() {
        let mut c = Catalog::default();
        let first = files(&[("slices.yaml", slice("web-1", "10.0.0.1"))]);
        c.update(&first);
        let with_route = |slices: Result<String, String>| {
            let mut f = files(&[("slices.yaml", slices)]);
            f[0].1 = Ok(format!(
                "{ROUTE}---\n{SERVICE}---\n{}",
                slice("web-9", "10.0.0.9").unwrap()
            ));
            f
        };
        // A file with other kinds in it changed.
        assert!(
            c.update_endpoints(&with_route(slice("web-1", "10.0.0.1")))
                .is_none()
        );
        // A slice file that does not parse, or cannot be read.
        for bad in [
            Ok("endpoints: [unclosed".to_string()),
            Err("denied".to_string()),
        ] {
            assert!(
                c.update_endpoints(&files(&[("slices.yaml", bad)]))
                    .is_none()
            );
        }
        // A slice file that now holds a Route.
        let mixed = format!("{}---\n{ROUTE}", slice("web-1", "10.0.0.1").unwrap());
        assert!(
            c.update_endpoints(&files(&[("slices.yaml", Ok(mixed))]))
                .is_none()
        );
        // The file of Routes removed.
        let only_slices = vec![("slices.yaml".to_string(), slice("web-1", "10.0.0.5"))];
        assert!(c.update_endpoints(&only_slices).is_none());
        // None of that was taken in: the same files are still "unchanged".
        assert!(c.update_endpoints(&first).is_none());
        assert!(
            c.update_endpoints(&files(&[("slices.yaml", slice("web-1", "10.0.0.5"))]))
                .is_some()
        );
    }
}
