//! Project keys against real `git` repositories, remotes and worktrees.

mod common;

use common::git;

use ferry_sync::project_key::{KeyKind, Link, project_key};

#[test]
#[cfg_attr(windows, ignore = "makes its repositories with the git CLI")]
fn clones_worktrees_and_plain_dirs_get_the_expected_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let remote = tmp.path().join("remote.git");
    std::fs::create_dir_all(&home).unwrap();
    git(tmp.path(), &["init", "--bare", remote.to_str().unwrap()]);
    // Seed the remote with one commit so clones have a work tree with content.
    let seed = tmp.path().join("seed");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            seed.to_str().unwrap(),
        ],
    );
    std::fs::create_dir_all(seed.join("pkg/x")).unwrap();
    std::fs::write(seed.join("pkg/x/f"), "x").unwrap();
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-qm", "seed"]);
    git(&seed, &["push", "-q", "origin", "HEAD:main"]);

    let a = home.join("src/proj");
    let b = home.join("work/deep/Other Name");
    for (dir, url) in [
        (&a, "git@github.com:Owner/Proj.git"),
        (&b, "https://github.com/owner/proj"),
    ] {
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                remote.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        git(dir, &["remote", "set-url", "origin", url]);
    }
    let ka = project_key(&a.join("pkg/x"), Some(&home), &[]).unwrap();
    let kb = project_key(&b.join("pkg/x"), Some(&home), &[]).unwrap();
    assert_eq!(ka, kb);
    assert_eq!(ka.to_string(), "github.com/owner/proj//pkg/x");
    assert_eq!(
        project_key(&a, Some(&home), &[]).unwrap().to_string(),
        "github.com/owner/proj"
    );

    // A worktree of the same repository is the same project.
    let wt = home.join("wt");
    git(&a, &["worktree", "add", "-q", wt.to_str().unwrap()]);
    assert_eq!(
        project_key(&wt.join("pkg/x"), Some(&home), &[]).unwrap(),
        ka
    );

    // A symlinked cwd resolves like Claude Code's realpath.
    #[cfg(unix)]
    {
        let link = home.join("link-to-a");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert_eq!(
            project_key(&link.join("pkg"), Some(&home), &[])
                .unwrap()
                .to_string(),
            "github.com/owner/proj//pkg"
        );
    }

    // No remote: relative to HOME. Outside HOME and git: absolute.
    let local = home.join("notes");
    std::fs::create_dir_all(local.join("d")).unwrap();
    git(&local, &["init", "-q"]);
    let k = project_key(&local.join("d"), Some(&home), &[]).unwrap();
    assert_eq!(
        (k.to_string(), k.kind),
        ("~/notes/d".to_string(), KeyKind::Home)
    );
    let outside = tmp.path().join("scratch");
    std::fs::create_dir_all(&outside).unwrap();
    let k = project_key(&outside, Some(&home), &[]).unwrap();
    assert_eq!(k.kind, KeyKind::Absolute);
    assert_eq!(
        k.to_string(),
        outside.canonicalize().unwrap().to_str().unwrap()
    );

    // A link overrides the remote.
    let links = [Link {
        path: b.to_str().unwrap().into(),
        key: "my/proj".into(),
    }];
    let k = project_key(&b.join("pkg"), Some(&home), &links).unwrap();
    assert_eq!(
        (k.to_string(), k.kind),
        ("my/proj//pkg".to_string(), KeyKind::Linked)
    );
}
