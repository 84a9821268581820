//! Sets `cfg(mounts)` where `ferry mount` can mount: Unix (FUSE), and Windows built with the
//! `winfsp` feature (or `winfsp-check`, for type-checking on another OS).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mounts)");
    let unix = std::env::var_os("CARGO_CFG_UNIX").is_some();
    let windows = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "windows");
    let winfsp = std::env::var_os("CARGO_FEATURE_WINDOWS_MOUNT").is_some();
    if unix || (windows && winfsp) {
        println!("cargo::rustc-cfg=mounts");
    }
}
