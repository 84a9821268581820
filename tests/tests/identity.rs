//! A machine's identity against copies of its state dir (issue 27), with the built binary, real
//! mounts and a shared remote: alpha's HOME and state dir are copied while alpha keeps running
//! (a restored backup, a synced home). The copy takes a new machine id before it writes
//! anything, so the two never write one branch: a third machine ends with every line of both,
//! each sees the other's, and `ferry status` says what happened.

use ferry_tests::elsewhere::Elsewhere;
use ferry_tests::ferry::Machine;
use ferry_tests::rig::eventually;
use std::io::Write;
use std::time::Duration;

fn append(m: &Machine, id: &str, uuid: &str) {
    let dir = m.projects().join("-w-proj");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{id}.jsonl")))
        .unwrap();
    writeln!(f, "{{\"uuid\":\"{uuid}\",\"cwd\":\"/w/proj\"}}").unwrap();
}

fn holds(m: &Machine, id: &str, uuids: &[&str]) -> bool {
    let text = std::fs::read_to_string(m.projects().join(format!("-w-proj/{id}.jsonl")))
        .unwrap_or_default();
    uuids.iter().all(|u| text.contains(&format!("\"{u}\"")))
}

/// Machine alpha under `dir`, set up with a remote there, mounted, with a line `a0` in session
/// `s1` synced; and the remote.
fn alpha_with_a_line(dir: &std::path::Path) -> (Machine, String) {
    let remote = dir.join("remote.git").to_str().unwrap().to_string();
    let alpha = Machine::new(&dir.join("alpha"));
    alpha.ok(&["init", "--machine", "alpha", "--remote", &remote]);
    alpha.ok(&["mount"]);
    append(&alpha, "s1", "a0");
    alpha.ok(&["sync"]);
    (alpha, remote)
}

/// Machine beta: a copy of alpha's HOME (read through its mount, as a backup would) and state
/// dir under `dir`, made while alpha runs.
fn copy_of_alpha(dir: &std::path::Path) -> Machine {
    let beta_dir = dir.join("beta");
    ferry_tests::must(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(dir.join("alpha"))
            .arg(&beta_dir),
    );
    let beta = Machine::at(beta_dir.join("home"), beta_dir.join("state"));
    let _ = std::fs::remove_file(beta.state.join("daemon.pid"));
    beta
}

fn machine_id(m: &Machine) -> String {
    let status: serde_json::Value = serde_json::from_str(&m.ok(&["status", "--json"])).unwrap();
    status["machine"]["id"].as_str().unwrap().to_string()
}

/// Both go on writing and syncing; a third machine then has every line of both, and each
/// has the other's.
fn both_write_and_a_third_has_every_line(
    dir: &std::path::Path,
    alpha: &Machine,
    beta: &Machine,
    remote: &str,
) {
    append(alpha, "s1", "a1");
    append(beta, "s1", "b1");
    append(beta, "s2", "b2");
    alpha.ok(&["sync"]);
    beta.ok(&["sync"]);
    alpha.ok(&["sync"]);

    let gamma = Machine::new(&dir.join("gamma"));
    gamma.ok(&["init", "--machine", "gamma", "--remote", remote]);
    gamma.ok(&["mount"]);
    let limit = Duration::from_secs(30);
    assert!(
        eventually(limit, || holds(&gamma, "s1", &["a0", "a1", "b1"])
            && holds(&gamma, "s2", &["b2"])),
        "gamma lacks lines:\n{}",
        gamma.log_tail()
    );
    assert!(eventually(limit, || holds(alpha, "s1", &["b1"])
        && holds(alpha, "s2", &["b2"])));
    assert!(eventually(limit, || holds(beta, "s1", &["a1"])));
    for m in [alpha, beta, &gamma] {
        m.ok(&["unmount"]);
    }
}

#[test]
fn a_copied_state_dir_takes_a_new_id_and_every_line_of_both_reaches_a_third_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let (alpha, remote) = alpha_with_a_line(tmp.path());
    let alpha_id = machine_id(&alpha);

    let beta = copy_of_alpha(tmp.path());
    beta.ok(&["mount"]);
    let beta_id = machine_id(&beta);
    assert_ne!(beta_id, alpha_id, "the copy kept the machine id");
    let status = beta.ok(&["status"]);
    assert!(status.contains("a copy of machine alpha"), "{status}");
    let doctor = beta.ok(&["doctor"]);
    assert!(doctor.contains("a copy of machine alpha"), "{doctor}");
    both_write_and_a_third_has_every_line(tmp.path(), &alpha, &beta, &remote);
}

/// A restored backup on a new computer: HOME and the state dir at the very paths they had,
/// on a computer with another machine identity and hostname, while the old one runs on.
#[test]
fn a_copy_at_the_same_paths_on_another_computer_takes_a_new_id_and_no_line_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (alpha, remote) = alpha_with_a_line(tmp.path());
    let alpha_id = machine_id(&alpha);
    let copy = copy_of_alpha(tmp.path());
    let (home, state) = (copy.home.clone(), copy.state.clone());
    drop(copy);
    let laptop = std::sync::Arc::new(Elsewhere::new(
        "new-laptop",
        "0123456789abcdef0123456789abcdef",
        &[(&home, &alpha.home), (&state, &alpha.state)],
    ));
    let beta = Machine::elsewhere(alpha.home.clone(), alpha.state.clone(), laptop);
    beta.ok(&["mount"]);
    assert_ne!(machine_id(&beta), alpha_id, "the copy kept the machine id");
    let status = beta.ok(&["status"]);
    assert!(status.contains("a copy of machine alpha"), "{status}");
    assert!(status.contains("another computer"), "{status}");
    both_write_and_a_third_has_every_line(tmp.path(), &alpha, &beta, &remote);
}

/// A clone that keeps everything, its machine identity and its inodes too (a VM image): the
/// two installs are told apart by what they push. The one that finds commits of runs it never
/// had on its branch stops pushing, says so, and takes a new id at its next mount; a third
/// machine then has every line of both.
#[test]
fn a_clone_that_keeps_its_identity_is_found_as_a_twin_and_no_line_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (alpha, remote) = alpha_with_a_line(tmp.path());
    let remote = remote.as_str();
    let beta = copy_of_alpha(tmp.path());
    // As a VM image would: the state dir has the inode it was made with.
    let config_path = beta.state.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    let md = std::fs::metadata(&beta.state).unwrap();
    use std::os::unix::fs::MetadataExt;
    config["origin"]["dev"] = md.dev().into();
    config["origin"]["inode"] = md.ino().into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    beta.ok(&["mount"]);
    assert_eq!(machine_id(&beta), machine_id(&alpha), "a perfect clone");

    append(&beta, "s1", "b1");
    beta.ok(&["sync"]);
    append(&alpha, "s1", "a1");
    let out = alpha.ferry(&["sync"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("another install writes this machine's branch"),
        "{said}"
    );
    let status = alpha.ok(&["status"]);
    assert!(status.contains("twin:"), "{status}");
    let doctor = alpha.ok(&["doctor"]);
    assert!(
        doctor.contains("another install wrote this machine's branch"),
        "{doctor}"
    );
    // The next mount gives it an id of its own, and its lines go out under it. This unmount
    // could not push (a twin never does): it says so with exit code 3.
    assert_eq!(alpha.ferry(&["unmount"]).status.code(), Some(3));
    alpha.ok(&["mount"]);
    assert_ne!(machine_id(&alpha), machine_id(&beta));
    alpha.ok(&["sync"]);
    beta.ok(&["sync"]);

    let gamma = Machine::new(&tmp.path().join("gamma"));
    gamma.ok(&["init", "--machine", "gamma", "--remote", remote]);
    gamma.ok(&["mount"]);
    let limit = Duration::from_secs(30);
    assert!(
        eventually(limit, || holds(&gamma, "s1", &["a0", "a1", "b1"])),
        "gamma lacks lines:\n{}",
        gamma.log_tail()
    );
    assert!(eventually(limit, || holds(&alpha, "s1", &["b1"])));
    assert!(eventually(limit, || holds(&beta, "s1", &["a1"])));
    for m in [&alpha, &beta, &gamma] {
        m.ok(&["unmount"]);
    }
}

fn machines(m: &Machine) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&m.ok(&["machines", "--json"])).unwrap()["machines"]
        .as_array()
        .unwrap()
        .clone()
}

/// A reinstalled computer takes over its old machine's identity and branch on purpose; a
/// machine renamed is seen under its new name; a machine retired stays visible as history and
/// is marked retired everywhere.
#[test]
fn a_reinstall_takes_over_its_old_name_and_machines_are_renamed_and_retired() {
    let tmp = tempfile::tempdir().unwrap();
    let (alpha, remote) = alpha_with_a_line(tmp.path());
    let remote = remote.as_str();
    let old_id = machine_id(&alpha);
    alpha.ok(&["unmount"]);

    // The reinstall: the same HOME (its files kept), a new state dir.
    let again = Machine::at(alpha.home.clone(), tmp.path().join("alpha/state-new"));
    again.ok(&["init", "--remote", remote, "--as-machine", "alpha"]);
    assert_eq!(machine_id(&again), old_id, "the old identity continues");
    let said = again.ok(&["status"]);
    assert!(said.contains("continues machine alpha"), "{said}");
    let said = again.ok(&["doctor"]);
    assert!(said.contains("continues machine alpha"), "{said}");
    again.ok(&["mount"]);
    append(&again, "s1", "a1");
    again.ok(&["sync"]);

    let beta = Machine::new(&tmp.path().join("beta"));
    beta.ok(&["init", "--machine", "beta", "--remote", remote]);
    beta.ok(&["mount"]);
    append(&beta, "s2", "b1");
    beta.ok(&["sync"]);
    again.ok(&["sync"]);
    let rows = machines(&beta);
    assert_eq!(
        rows.len(),
        2,
        "no dead branch for the old install: {rows:?}"
    );
    assert!(eventually(Duration::from_secs(30), || holds(
        &beta,
        "s1",
        &["a0", "a1"]
    )));

    // A rename while mounted reaches the other machine by itself, with nothing else written.
    again.ok(&["machines", "rename", "alpha-laptop"]);
    let renamed = || {
        beta.ok(&["sync"]);
        machines(&beta).iter().any(|r| r["name"] == "alpha-laptop")
    };
    assert!(
        eventually(Duration::from_secs(30), renamed),
        "{:?}\n{}",
        machines(&beta),
        again.log_tail()
    );
    again.ok(&["unmount"]);

    // Retired from beta: its sessions stay, and it is marked so.
    beta.ok(&["unmount"]);
    beta.ok(&["machines", "retire", "alpha-laptop"]);
    beta.ok(&["sync"]);
    let rows = machines(&beta);
    let retired = rows
        .iter()
        .find(|r| r["name"] == "alpha-laptop")
        .expect("still listed");
    assert!(retired["retired_ms"].is_i64(), "{rows:?}");
    let said = beta.ok(&["doctor"]);
    assert!(
        said.contains("machine alpha-laptop") && said.contains("was retired"),
        "{said}"
    );
    let gamma = Machine::new(&tmp.path().join("gamma"));
    gamma.ok(&["init", "--machine", "gamma", "--remote", remote]);
    let rows = machines(&gamma);
    assert!(
        rows.iter()
            .any(|r| r["name"] == "alpha-laptop" && r["retired_ms"].is_i64()),
        "retired everywhere: {rows:?}"
    );
    gamma.ok(&["mount"]);
    assert!(eventually(Duration::from_secs(30), || holds(
        &gamma,
        "s1",
        &["a0", "a1"]
    )));
    gamma.ok(&["unmount"]);
}
