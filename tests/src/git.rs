//! Looking inside git repositories from a test: whether one is sound, and what it holds.

use std::path::Path;
use std::process::Command;

/// Asserts that `git fsck --full` finds the repository at `repo` (a git dir) sound.
pub fn fsck(repo: &Path) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--full", "--no-dangling"])
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git fsck {}: {}{}",
        repo.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every blob of the bare repository at `repo`, as text: what a remote would hand anyone.
pub fn blobs(repo: &Path) -> Vec<String> {
    let repo = git2::Repository::open_bare(repo).expect("a bare repository");
    let odb = repo.odb().expect("its object database");
    let mut out = Vec::new();
    odb.foreach(|id| {
        if let Ok(o) = odb.read(*id)
            && o.kind() == git2::ObjectType::Blob
        {
            out.push(String::from_utf8_lossy(o.data()).into_owned());
        }
        true
    })
    .expect("its objects");
    out
}

/// `git -C dir <args>` with a fixed identity, which must succeed.
pub fn run(dir: &Path, args: &[&str]) {
    output(dir, args);
}

/// [`run`], and what it printed on stdout.
pub fn output(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
