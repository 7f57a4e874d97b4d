//! Compiles `proto/lots/v1` with a vendored protoc, so no system protoc is needed.

use std::path::PathBuf;

const FILES: [&str; 8] = [
    "lots/v1/admin.proto",
    "lots/v1/common.proto",
    "lots/v1/complaint.proto",
    "lots/v1/insight.proto",
    "lots/v1/intake.proto",
    "lots/v1/routing.proto",
    "lots/v1/sla.proto",
    "lots/v1/visit.proto",
];

#[allow(unsafe_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    for f in FILES {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("lots_descriptor.bin"))
        .compile_protos(&FILES.map(|f| root.join(f)), &[root])?;
    Ok(())
}
