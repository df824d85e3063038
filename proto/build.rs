//! Compiles the .proto files with protox (pure Rust, no protoc) and generates prost
//! messages plus tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        [
            "api/v1beta1/api.proto",
            "health/health.proto",
            "kestrel/v1/manager.proto",
        ],
        ["proto"],
    )?;
    // The descriptors again, encoded, for gRPC server reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("kestrel_descriptors.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
