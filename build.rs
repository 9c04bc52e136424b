//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed) and
//! keeps the file descriptor set so the server can offer reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/authzd/v1/common.proto",
        "proto/authzd/v1/access.proto",
        "proto/authzd/v1/membership.proto",
        "proto/authzd/v1/directory.proto",
        "proto/authzd/v1/schema.proto",
        "proto/authzd/v1/watch.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("authzd_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
