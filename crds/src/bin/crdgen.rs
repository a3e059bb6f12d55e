//! Writes the generated CRD YAML (`make crds`): `crdgen [DIR]`, DIR defaulting to
//! `charts/frontdesk/crds`. A test fails when the committed files differ from the types.
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "charts/frontdesk/crds".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for (name, yaml) in frontdesk_crds::crd_manifests() {
        let path = dir.join(name);
        std::fs::write(&path, yaml)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
