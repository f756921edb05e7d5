//! The committed `include/krmx.h` must be exactly what cbindgen generates from `src/ffi/` now.

#[test]
fn committed_header_matches_a_fresh_generation() {
    let fresh = include_str!(concat!(env!("OUT_DIR"), "/krmx.h"));
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/krmx.h"))
        .expect("include/krmx.h is missing");
    assert!(
        fresh == committed,
        "include/krmx.h is stale: regenerate it with `KRMX_UPDATE_HEADER=1 cargo build` and commit it"
    );
}

#[test]
fn header_version_matches_the_crate() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/krmx.h")).unwrap();
    let expected = format!("#define KRMX_VERSION \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(committed.contains(&expected), "missing {expected}");
}

#[test]
fn krmx_version_matches_the_header_macro() {
    let version = unsafe { std::ffi::CStr::from_ptr(krmx::ffi::krmx_version()) }.to_str().unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}
