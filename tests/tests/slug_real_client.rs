//! ferry's slug function against the directories the real Claude Code client creates.

use ferry_sync::slug::slug;
use ferry_tests::claude::{User, VERSIONS};
use ferry_tests::workspace_root;
use std::path::PathBuf;

/// `(cwd, slug)` pairs recorded from the real client (both versions agreed on every one).
fn golden() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(workspace_root().join("tests/claude/slug_golden.tsv")).unwrap();
    let rows: Vec<_> = text
        .lines()
        .map(|l| {
            let (cwd, slug) = l.split_once('\t').expect("cwd<TAB>slug");
            (cwd.to_string(), slug.to_string())
        })
        .collect();
    assert!(rows.len() >= 15, "golden file lost rows");
    rows
}

const GOLDEN_BASE: &str = "/tmp/ferry-slug-golden";

#[test]
fn recorded_golden_slugs() {
    for (cwd, want) in golden() {
        assert_eq!(slug(&cwd), want, "{cwd}");
    }
}

/// Runs the client in a fresh copy of every golden cwd and checks the directory it created.
fn client_creates_our_slug(version: &str, run: u64) {
    // A base of the same length as the recorded one keeps the 200-unit cases on their edge.
    let base = PathBuf::from(format!(
        "/tmp/fsg{:014}",
        u64::from(std::process::id()) * 10 + run
    ));
    assert_eq!(base.as_os_str().len(), GOLDEN_BASE.len());
    let _ = std::fs::remove_dir_all(&base);
    let tmp = tempfile::tempdir().unwrap();
    let user = User::new(tmp.path());
    let mut failures = Vec::new();
    for (golden_cwd, _) in golden() {
        let cwd = format!("{}{}", base.display(), &golden_cwd[GOLDEN_BASE.len()..]);
        std::fs::create_dir_all(&cwd).unwrap();
        let before: Vec<_> = list(&user.config_dir.join("projects"));
        let out = user.run(version, cwd.as_ref(), &["-p", "hello"]);
        assert!(
            out.status.success(),
            "claude {version} in {cwd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Vec<_> = list(&user.config_dir.join("projects"))
            .into_iter()
            .filter(|d| !before.contains(d))
            .collect();
        if created != [slug(&cwd)] {
            failures.push(format!(
                "{cwd}: client made {created:?}, ferry computes {:?}",
                slug(&cwd)
            ));
        }
    }
    std::fs::remove_dir_all(&base).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn list(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn client_2_1_197_creates_our_slug() {
    assert_eq!(VERSIONS[0], "2.1.197");
    client_creates_our_slug(VERSIONS[0], 0);
}

#[test]
fn client_2_1_330_creates_our_slug() {
    assert_eq!(VERSIONS[1], "2.1.330");
    client_creates_our_slug(VERSIONS[1], 1);
}
