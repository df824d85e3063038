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
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
