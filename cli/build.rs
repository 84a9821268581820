//! Sets `cfg(mounts)` where `ferry mount` can mount: Unix (FUSE), and Windows built with the
//! `winfsp` feature (or `winfsp-check`, for type-checking on another OS). Records the commit and
//! the features for `ferry --version`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mounts)");
    let unix = std::env::var_os("CARGO_CFG_UNIX").is_some();
    let windows = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "windows");
    let winfsp = std::env::var_os("CARGO_FEATURE_WINDOWS_MOUNT").is_some();
    if unix || (windows && winfsp) {
        println!("cargo::rustc-cfg=mounts");
    }
    println!("cargo::rustc-env=FERRY_COMMIT={}", commit());
    let mount = if unix {
        "mount: fuse"
    } else if std::env::var_os("CARGO_FEATURE_WINFSP").is_some() {
        "mount: winfsp"
    } else {
        "mount: none (built without the winfsp feature)"
    };
    println!("cargo::rustc-env=FERRY_FEATURES={mount}");
}

/// The commit this is built from, or `unknown commit` outside a git checkout (a crates.io
/// build).
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown commit".into();
    };
    println!("cargo::rerun-if-changed=build.rs");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo::rerun-if-changed={dir}/HEAD");
        println!("cargo::rerun-if-changed={dir}/packed-refs");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo::rerun-if-changed={dir}/{branch}");
        }
    }
    format!("commit {head}")
}
