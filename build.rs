//! Generates the C header from `src/ffi/` with cbindgen: always into OUT_DIR (the test suite
//! compares it with the committed `include/krmx.h`), and into `include/` when
//! `KRMX_UPDATE_HEADER=1` is set.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=KRMX_UPDATE_HEADER");
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let version = env::var("CARGO_PKG_VERSION").unwrap();
    let part = |name: &str| env::var(name).unwrap();
    let version_macros = format!(
        "\n#define KRMX_VERSION \"{version}\"\n#define KRMX_VERSION_MAJOR {}\n#define KRMX_VERSION_MINOR {}\n#define KRMX_VERSION_PATCH {}\n",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );
    let header = match cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_after_include(version_macros)
        .generate()
    {
        Ok(header) => header,
        Err(e) => {
            println!("cargo:warning=cbindgen could not generate the header: {e}");
            return;
        }
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("krmx.h");
    header.write_to_file(&out);
    if env::var("KRMX_UPDATE_HEADER").is_ok_and(|v| v == "1") {
        header.write_to_file(crate_dir.join("include/krmx.h"));
    }
}
