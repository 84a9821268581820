//! commuter (PyPI `commuter`): one session per bundle, `export` on one machine and
//! `import --project-dir` on the other, as its README's manual flow prescribes.

use super::{Tool, step};
use crate::peers::corpus::Session;
use crate::peers::cost::Cost;
use crate::peers::world::{Arrival, World};

/// The commuter peer.
#[derive(Default)]
pub struct Commuter;

impl Tool for Commuter {
    fn name(&self) -> &'static str {
        "commuter 0.2.0"
    }

    fn transfer(&mut self, w: &World, to_b: bool, sessions: &[Session], _: &[Arrival]) -> Cost {
        let bundles = w.root.join("commuter-bundles");
        std::fs::create_dir_all(&bundles).expect("bundle dir");
        let mut total = Cost::default();
        for s in sessions {
            let bundle = bundles.join(format!("{}.json", s.id));
            // `true` is A: from A to B when `to_b`.
            let from = w.project_dir(to_b, s);
            let into = w.project_dir(!to_b, s);
            let mut export = w.peer(to_b, "commuter", &from);
            export.arg("export").arg(&s.id).arg("-o").arg(&bundle);
            total.add(step(&mut export));
            let mut import = w.peer(!to_b, "commuter", &into);
            import
                .arg("import")
                .arg(&bundle)
                .arg("--project-dir")
                .arg(&into)
                .args(["--replace", "--no-launch"]);
            total.add(step(&mut import));
        }
        total
    }

    fn per_session(&self) -> bool {
        true
    }
}
