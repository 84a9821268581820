//! Fuzzes what is parsed from a remote before anything is trusted: path names in its trees
//! (`RelPath`), its JSON records (machine, project, file metadata), the mapping built from them,
//! and remote URLs. Nothing may panic, and a path that is accepted can never leave the directory
//! it is joined to. Run: `fuzz/run.sh remote_records 60`.
#![no_main]

use ferry_sync::store::{FileMeta, MachineRecord, ProjectRecord, RelPath, mapping_for};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let Ok(s) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(p) = RelPath::new(s) {
                let path = Path::new(p.as_str());
                assert!(
                    path.components().all(|c| matches!(c, Component::Normal(_))),
                    "accepted path {s:?} has a non-normal component"
                );
                assert!(!s.contains('\0') && !s.contains('\\'), "{s:?}");
                let _ = p.tree_path();
            }
        }
        1 => {
            // A machine record and a project record from one remote branch, split at 0xFF.
            let mut parts = rest.splitn(2, |&b| b == 0xFF);
            let m = serde_json::from_slice::<MachineRecord>(parts.next().unwrap_or_default());
            let p = serde_json::from_slice::<ProjectRecord>(parts.next().unwrap_or_default());
            if let (Ok(m), Ok(p)) = (m, p) {
                let _ = mapping_for(&m, &p);
            }
        }
        2 => {
            let _ = serde_json::from_slice::<FileMeta>(rest);
        }
        _ => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = ferry_sync::remote_url::normalise(s);
            }
        }
    }
});
