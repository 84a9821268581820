//! Remotes over https (issue 20): `git http-backend` behind TLS with Basic auth and a
//! self-signed CA, on 127.0.0.1, reached through the user's own git: the CA named by
//! `http.sslCAInfo`, a credential helper scoped to `https://host:port`, a wrong stored password
//! refused once and then left alone (counted in the server's own log, from a mounted daemon
//! polling every 2 s), and two machines exchanging a session.

use ferry_tests::ferry::Machine;
use ferry_tests::rig::eventually;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ferry test CA",
            "-keyout",
        ])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(p("srv.key"))
        .arg("-out")
        .arg(p("srv.csr")));
    std::fs::write(p("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(p("srv.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .args(["-CAcreateserial", "-out"])
        .arg(p("srv.pem"))
        .arg("-extfile")
        .arg(p("san.ext")));
    (p("ca.pem"), p("srv.pem"), p("srv.key"))
}

/// The https git server; stopped on drop.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let (_, cert, key) = certificates(dir);
        let root = dir.join("srv");
        run(Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(root.join("sessions.git")));
        let port_file = dir.join("port");
        let log = dir.join("requests.log");
        let script = ferry_tests::workspace_root().join("tests/http/git_http_server.py");
        let child = Command::new("python3")
            .arg(script)
            .arg("--root")
            .arg(&root)
            .arg("--port-file")
            .arg(&port_file)
            .args(["--user", "al", "--password", "s3cret/t@ken"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--log")
            .arg(&log)
            .spawn()
            .expect("python3 runs");
        let start = Instant::now();
        while !port_file.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        Server { child, port, log }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/sessions.git", self.port)
    }

    /// Logins the server refused (a request with credentials answered 401).
    fn refused(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("401 refused")
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Machine `name` whose git trusts the test CA and finds `password` through a credential
/// helper scoped to the server's `https://host:port`.
fn machine(dir: &Path, name: &str, server: &Server, password: &str) -> Machine {
    let m = Machine::new(&dir.join(name));
    let ca = dir.join("ca.pem");
    // A helper that always answers (as a keychain does): a wrong password would be sent again
    // and again by anything that retried.
    let helper = format!("!f() {{ echo username=al; echo 'password={password}'; }}; f");
    std::fs::write(
        m.home.join(".gitconfig"),
        format!(
            "[http]\n\tsslCAInfo = {}\n[credential \"https://127.0.0.1:{}\"]\n\thelper = \"{}\"\n",
            ca.display(),
            server.port,
            helper.replace('"', "\\\"")
        ),
    )
    .unwrap();
    m.ok(&[
        "init",
        "--machine",
        name,
        "--remote",
        &server.url(),
        "--offline",
    ]);
    m
}

#[test]
fn https_with_a_private_ca_and_a_scoped_helper_and_two_machines_exchange() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let a = machine(tmp.path(), "a", &server, "s3cret/t@ken");
    let b = machine(tmp.path(), "b", &server, "s3cret/t@ken");
    let dir = a.projects().join("-w-proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("s-https.jsonl"),
        "{\"uuid\":\"h1\",\"cwd\":\"/w/proj\"}\n",
    )
    .unwrap();
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    let sessions = b.ok(&["sessions", "--json"]);
    assert!(sessions.contains("s-https"), "{sessions}");
    assert_eq!(server.refused(), 0);
    // `ferry init` checks the remote: reachable, it sets up; a server without the CA is not.
    let plain = Machine::new(&tmp.path().join("no-ca"));
    let out = plain.ferry(&["init", "--machine", "p", "--remote", &server.url()]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("sslCAInfo"), "{said}");
}

#[test]
fn a_wrong_stored_password_is_refused_once_then_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let m = machine(tmp.path(), "w", &server, "wrong");
    m.ok(&["mount"]);
    // The daemon fetches every 2 s while active: a loop of logins would show within seconds.
    assert!(eventually(Duration::from_secs(20), || server.refused() >= 1));
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        server.refused(),
        1,
        "failed logins while the daemon ran:\n{}\n{}",
        std::fs::read_to_string(&server.log).unwrap_or_default(),
        m.log_tail()
    );
    let status: serde_json::Value = serde_json::from_str(&m.ok(&["status", "--json"])).unwrap();
    let paused = status["remote"]["paused"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        paused.contains("refused the stored credentials"),
        "{status}"
    );
    assert!(!serde_json::to_string(&status).unwrap().contains("t@ken"));
    // The user acts: `ferry sync` tries once more at once.
    let out = m.ferry(&["sync"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(server.refused(), 2);
    let out = m.ferry(&["unmount"]);
    assert_eq!(out.status.code(), Some(3), "not pushed, and it says so");
    assert_eq!(server.refused(), 2, "no last try at unmount");
}
