//! Finds the web UI's built files (`ui/dist` at the repository root, made by `npm ci && npm
//! run build` in `ui/`) for `ui.rs` to embed. When they are not built, a one-page placeholder
//! saying how to build them is embedded instead, so the server always compiles.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let dist = manifest.join("../../ui/dist");
    // A directory is scanned whole for changes; a missing one makes this run every build,
    // so the UI is picked up as soon as it is built.
    println!("cargo:rerun-if-changed={}", dist.display());
    let dir = if dist.join("index.html").is_file() {
        dist
    } else {
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("ui-placeholder");
        std::fs::create_dir_all(&out).expect("placeholder dir");
        std::fs::write(
            out.join("index.html"),
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drover</title></head>\
             <body><h1>Drover</h1><p>UI not built: run <code>npm ci &amp;&amp; npm run build</code> \
             in <code>ui/</code>, then build the server again. The API is at <code>/v1</code>.</p></body></html>\n",
        )
        .expect("placeholder page");
        out
    };
    let dir = dir.canonicalize().expect("ui dir");
    println!("cargo:rustc-env=DROVER_UI_DIR={}", dir.display());
}
