//! The engine against `git http-backend` over HTTP on loopback, with Basic auth answered by
//! git's own credential helper (`credential.helper store`), as a user's https remote would be.
//! Its own test binary: it points HOME at a temp dir so git's global config is the test's.

mod common;

use ferry_sync::engine::{self, EngineConfig};
use ferry_sync::store::{Change, RelPath, Store};
use std::path::Path;
use std::time::{Duration, Instant};

use common::run;

struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg_attr(windows, ignore = "serves the remote with python3's http server")]
fn https_style_remote_with_a_credential_helper() {
    run(async {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        // SAFETY: this test binary has this one test; nothing else reads the environment meanwhile.
        unsafe { std::env::set_var("HOME", &home) };
        let root = tmp.path().join("srv");
        git2::Repository::init_bare(root.join("sessions.git")).unwrap();
        let port_file = tmp.path().join("port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/http/git_http_server.py");
        let _server = Server(
            std::process::Command::new("python3")
                .arg(script)
                .arg("--root")
                .arg(&root)
                .arg("--port-file")
                .arg(&port_file)
                .args(["--user", "al", "--password", "s3cret-token"])
                .spawn()
                .expect("python3 runs"),
        );
        let start = Instant::now();
        while !port_file.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let port: u16 = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        let creds = tmp.path().join("git-credentials");
        std::fs::write(
            &creds,
            format!("http://al:s3cret-token@127.0.0.1%3a{port}\n"),
        )
        .unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            format!(
                "[credential]\n\thelper = store --file={}\n",
                creds.display()
            ),
        )
        .unwrap();

        let url = format!("http://127.0.0.1:{port}/sessions.git");
        let machine = common::linux_machine("aaaa", "/home/al");
        let project = common::project("k", "/home/al/p");
        let store_path = tmp.path().join("store.git");
        Store::init(&store_path).unwrap();
        let handle = engine::start(
            store_path,
            machine,
            Some(url.clone()),
            EngineConfig {
                net_timeout: Duration::from_secs(10),
                ..EngineConfig::default()
            },
        );
        let file = tmp.path().join("s.jsonl");
        std::fs::write(&file, "{\"cwd\":\"/home/al/p\",\"uuid\":\"1\"}\n").unwrap();
        handle.note(
            &project,
            RelPath::new("s.jsonl").unwrap(),
            Change::Write {
                local: file,
                dirty_from: None,
            },
            10,
        );
        let report = handle.sync_now().await;
        assert_eq!(report.remote_ok, Some(true), "{report:?}");
        let remote = git2::Repository::open_bare(root.join("sessions.git")).unwrap();
        assert!(
            remote.refname_to_id("refs/heads/machines/aaaa").is_ok(),
            "pushed over HTTP"
        );
        // A wrong password fails clearly, and never shows up in the status.
        std::fs::write(&creds, format!("http://al:wrong@127.0.0.1%3a{port}\n")).unwrap();
        let report = handle.sync_now().await;
        assert_eq!(report.remote_ok, Some(false));
        let status = serde_json_string(&handle.status());
        assert!(
            !status.contains("s3cret-token") && !status.contains("wrong"),
            "{status}"
        );
    })
}

fn serde_json_string(status: &ferry_sync::engine::Status) -> String {
    format!("{status:?}")
}
