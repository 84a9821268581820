//! Secret scanning before push, with the built binary and a real `file://` remote: `redact` (the
//! default) pushes every other byte unchanged and keeps the secret in the local file only,
//! `warn` pushes and lists the finding in `ferry status`, `block` holds the file back until the
//! secret is gone; `ferry init` says what its first import found before anything else.

use ferry_tests::ferry::{Machine, Pair};
use ferry_tests::git::blobs;
use serde_json::Value;
use std::path::PathBuf;

fn key() -> String {
    format!("sk-ant-api03-{}", "Zq7x".repeat(20))
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A transcript in a's project dir (unmounted: the plain directory), naming a's checkout.
fn write(m: &Machine, proj: &std::path::Path, name: &str, lines: &[String]) -> PathBuf {
    let dir = m
        .projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("")).unwrap();
    path
}

fn line(uuid: &str, cwd: &std::path::Path, text: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({"uuid": uuid, "cwd": cwd, "message": {"content": text}})
    )
}

/// Whether `ferry status` on `m` lists a finding in `path` with `action`.
fn listed(m: &Machine, path: &str, action: &str) -> bool {
    let st = json(&m.ok(&["status", "--json"]));
    st["secrets"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == path && f["action"] == action)
}

/// What b's view shows of `name` (mounted for the read, then unmounted).
fn on_b(b: &Machine, proj: &std::path::Path, name: &str) -> Option<String> {
    b.ok(&["mount"]);
    let path = b
        .projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()))
        .join(name);
    let text = std::fs::read_to_string(path).ok();
    b.ok(&["unmount"]);
    text
}

#[test]
fn warn_redact_and_block() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        a,
        b,
        a_proj,
        b_proj,
        ..
    } = Pair::new(tmp.path());
    let key = key();
    let leak = format!("export ANTHROPIC_API_KEY={key} && make deploy");

    // warn: pushed, and listed with its place.
    a.ok(&["init", "--secrets", "warn"]);
    let first = line("w1", &a_proj, "no secret here");
    write(
        &a,
        &a_proj,
        "warn.jsonl",
        &[first.clone(), line("w2", &a_proj, &leak)],
    );
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    let st = json(&a.ok(&["status", "--json"]));
    let f = &st["secrets"]["findings"];
    assert_eq!(f.as_array().unwrap().len(), 1, "{st}");
    assert_eq!(f[0]["kind"], "anthropic-api-key");
    assert_eq!(f[0]["action"], "pushed");
    assert_eq!(f[0]["path"], "warn.jsonl");
    let at = f[0]["offset"].as_u64().unwrap() as usize;
    let local = std::fs::read_to_string(
        a.projects()
            .join(ferry_sync::slug::slug(a_proj.to_str().unwrap()))
            .join("warn.jsonl"),
    )
    .unwrap();
    assert!(
        local[at..].starts_with("sk-ant-"),
        "the offset points at it"
    );
    assert!(
        !st.to_string().contains(&key),
        "status never shows the secret"
    );
    let text = a.ok(&["status"]);
    assert!(
        text.contains("anthropic-api-key") && text.contains("revoke"),
        "{text}"
    );
    b.ok(&["sync"]);
    assert!(on_b(&b, &b_proj, "warn.jsonl").unwrap().contains(&key));

    // redact: every other byte arrives unchanged; the local file keeps the secret.
    a.ok(&["init", "--secrets", "redact"]);
    let lines = [
        line(
            "r1",
            &a_proj,
            &format!("read {}/src/main.rs", a_proj.display()),
        ),
        line("r2", &a_proj, &leak),
        line("r3", &a_proj, "é and \u{0} and \\n stay"),
    ];
    let local = write(&a, &a_proj, "redact.jsonl", &lines);
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    assert!(std::fs::read_to_string(&local).unwrap().contains(&key));
    b.ok(&["sync"]);
    let seen = on_b(&b, &b_proj, "redact.jsonl").expect("redacted file arrived");
    let want = lines
        .concat()
        .replace(a.home.to_str().unwrap(), b.home.to_str().unwrap())
        .replace(&key, "[REDACTED:anthropic-api-key]");
    assert_eq!(seen, want);
    assert!(listed(&a, "redact.jsonl", "redacted"));

    // block: nothing of the file leaves until the secret is gone.
    a.ok(&["init", "--secrets", "block"]);
    write(
        &a,
        &a_proj,
        "block.jsonl",
        &[first.clone(), line("b2", &a_proj, &leak)],
    );
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    b.ok(&["sync"]);
    assert_eq!(on_b(&b, &b_proj, "block.jsonl"), None, "held back");
    assert!(listed(&a, "block.jsonl", "held back"));
    write(
        &a,
        &a_proj,
        "block.jsonl",
        &[first.clone(), line("b3", &a_proj, "rotated")],
    );
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    b.ok(&["sync"]);
    let seen = on_b(&b, &b_proj, "block.jsonl").expect("sent once clean");
    assert!(seen.contains("rotated") && !seen.contains(&key));
}

/// The policy holds for sessions that exist before `ferry init`: the first import is pushed
/// right away, so it must redact or hold back like any later commit.
#[test]
fn the_first_import_applies_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let leak = format!("my key is {} ok", key());
    for policy in ["redact", "block"] {
        let dir = tmp.path().join(policy);
        let remote = dir.join("remote.git");
        git2::Repository::init_bare(&remote).unwrap();
        let a = Machine::new(&dir.join("a"));
        let proj = a.home.join("work/proj");
        std::fs::create_dir_all(&proj).unwrap();
        write(&a, &proj, "old.jsonl", &[line("o1", &proj, &leak)]);
        write(
            &a,
            &proj,
            "clean.jsonl",
            &[line("c1", &proj, "nothing here")],
        );
        let url = format!("file://{}", remote.display());
        a.ok(&[
            "init",
            "--machine",
            "a",
            "--remote",
            &url,
            "--secrets",
            policy,
        ]);
        let pushed = blobs(&remote);
        assert!(
            pushed.iter().any(|b| b.contains("nothing here")),
            "{policy}: the import was pushed"
        );
        assert!(
            !pushed.iter().any(|b| b.contains(&key())),
            "{policy}: the secret reached the remote"
        );
        let redacted = pushed
            .iter()
            .any(|b| b.contains("[REDACTED:anthropic-api-key]"));
        assert_eq!(redacted, policy == "redact", "{policy}");
        let action = if policy == "redact" {
            "redacted"
        } else {
            "held back"
        };
        assert!(listed(&a, "old.jsonl", action), "{policy}: status lists it");
    }
}

/// A new user's `ferry init` over transcripts that hold keys of many kinds: by default nothing
/// of any of them reaches the remote, and init says what it found, as text and as JSON.
#[test]
fn init_redacts_by_default_and_says_what_it_found() {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = [
        ("anthropic-api-key", key()),
        ("aws-access-key-id", "AKIAQ3EGRT7YLWZ5KD4M".to_string()),
        ("stripe-key", format!("sk_live_{}", "51HqLyQ2eZvKYlo2C".repeat(2))),
        ("huggingface-token", format!("hf_{}", "QwErTyUiOpAsDfGhJk".repeat(2))),
        ("npm-token", format!("npm_{}", "a8F3k2L9q0".repeat(4))),
        (
            "jwt",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIn0.Xq3mKp9vLw2RtY8sN4bZ1cD5fG7hJ0kL"
                .to_string(),
        ),
        ("url-password", "hunter2-Pr0d".to_string()),
    ];
    let said = |text: &str, kind: &str| match kind {
        "url-password" => format!("psql postgres://app:{text}@db.internal:5432/prod"),
        _ => format!("export TOKEN={text} # for the deploy"),
    };
    for (run, json_out) in [("text", false), ("json", true)] {
        let dir = tmp.path().join(run);
        let remote = dir.join("remote.git");
        git2::Repository::init_bare(&remote).unwrap();
        let a = Machine::new(&dir.join("a"));
        let proj = a.home.join("work/proj");
        std::fs::create_dir_all(&proj).unwrap();
        let lines: Vec<String> = secrets
            .iter()
            .enumerate()
            .map(|(i, (kind, text))| line(&format!("s{i}"), &proj, &said(text, kind)))
            .collect();
        write(&a, &proj, "old.jsonl", &lines);
        let url = format!("file://{}", remote.display());
        let mut args = vec!["init", "--machine", "a", "--remote", &url];
        if json_out {
            args.push("--json");
        }
        let out = a.ok(&args);
        let pushed = blobs(&remote).concat();
        assert!(
            pushed.contains("for the deploy"),
            "{run}: the import was pushed"
        );
        for (kind, text) in &secrets {
            assert!(
                !pushed.contains(text.as_str()),
                "{run}: {kind} reached the remote"
            );
            assert!(
                pushed.contains(&format!("[REDACTED:{kind}]")),
                "{run}: {kind} was not redacted"
            );
        }
        assert!(pushed.contains("postgres://app:[REDACTED:url-password]@db.internal"));
        if json_out {
            let v = json(&out);
            assert_eq!(v["schema"], 1, "{out}");
            assert_eq!(v["secrets_policy"], "redact", "{out}");
            let found = v["secrets"].as_array().unwrap();
            assert_eq!(found.len(), secrets.len(), "{out}");
            for (kind, _) in &secrets {
                assert!(
                    found
                        .iter()
                        .any(|f| f["kind"] == *kind && f["action"] == "redacted"),
                    "{kind} not reported: {out}"
                );
            }
            assert!(!out.contains(&key()), "init never prints a secret");
        } else {
            assert!(
                out.contains(&format!("found {} secret(s)", secrets.len()))
                    && out.contains("REDACTED")
                    && out.contains("stripe-key"),
                "{out}"
            );
            // Said before the remote's line: it is the first thing a user must read.
            assert!(
                out.find("found").unwrap() < out.find("remote:").unwrap(),
                "{out}"
            );
        }
    }
}
