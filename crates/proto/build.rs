//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed) and
//! keeps the file descriptor set so the server can offer reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../proto/authzd/v1/common.proto",
        "../../proto/authzd/v1/access.proto",
        "../../proto/authzd/v1/membership.proto",
        "../../proto/authzd/v1/directory.proto",
        "../../proto/authzd/v1/schema.proto",
        "../../proto/authzd/v1/watch.proto",
        "../../proto/authzd/v1/audit.proto",
        "../../proto/authzd/v1/replication.proto",
    ];
    println!("cargo:rerun-if-changed=../../proto");
    let descriptors = protox::compile(protos, ["../../proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("authzd_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // Messages and clients first, then the servers alone in a folder of
    // their own: the servers decode requests with `crate::codec`,
    // which answers a body that is not protobuf with INVALID_ARGUMENT
    // (the caller's fault), while clients keep prost's INTERNAL for a bad
    // response (the server's fault). One codec path cannot tell the two
    // sides apart, hence two passes over the same descriptors.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(descriptors.clone())?;
    let servers = out.join("servers");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&servers)
        .extern_path(".authzd.v1", "crate::pb")
        // Watch pieces are encoded once for every subscriber that shares
        // them, and the server writes those bytes as they are.
        .extern_path(".authzd.v1.WatchResponse", "crate::codec::Encoded")
        .codec_path("crate::codec::RequestCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
