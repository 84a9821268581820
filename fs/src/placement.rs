//! Where another machine's project appears on this machine (issue #4's placement rules): the
//! local directory its sessions belong to, hence the slug directory the view shows them under and
//! the codec mapping that expands them.
//!
//! 1. A `ferry link` entry or a checkout of the same project on this machine decides.
//! 2. Otherwise the origin's path relative to its HOME is mapped into this HOME. Both are taken
//!    with symlinks resolved where the machine records that spelling (a HOME reached through a
//!    symlink): Claude Code names project directories after resolved paths.
//! 3. Otherwise (a path outside HOME: not portable) the same absolute path is used when both
//!    machines spell paths alike, else `~/ferry-elsewhere/<last component>`.

use ferry_sync::codec::{Mapping, MappingError};
use ferry_sync::path_style::{PathStyle, SplitPath};
use ferry_sync::slug::slug;
use ferry_sync::store::{MachineRecord, ProjectRecord, mapping_for};
use std::collections::HashMap;

/// A foreign project placed on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The local project record: root, cwd and slug on this machine, the origin's key.
    pub project: ProjectRecord,
    /// The mapping that expands the origin's portable files for this machine.
    pub mapping: Mapping,
}

/// Joins `components` under `base` in `style`.
fn join(base: &str, components: &[&str], style: PathStyle) -> String {
    let mut out = base.trim_end_matches(['/', '\\']).to_string();
    for c in components {
        out.push(style.separator());
        out.push_str(c);
    }
    out
}

/// The key's repository part (`github.com/o/r` of `github.com/o/r//sub`).
fn key_base(key: &str) -> &str {
    key.split_once("//").map_or(key, |(base, _)| base)
}

/// Places `project` from machine `origin` on machine `local`. `checkouts` maps project key
/// bases to this machine's checkout roots (from its own sessions and `ferry link`).
pub fn place(
    local: &MachineRecord,
    checkouts: &HashMap<String, String>,
    origin: &MachineRecord,
    project: &ProjectRecord,
) -> Result<Placement, MappingError> {
    let style = local.style();
    let origin_root = SplitPath::parse(&project.root);
    let origin_cwd = SplitPath::parse(&project.cwd);
    // The cwd's components below the origin's root: the same inside every checkout.
    let sub: Vec<&str> = match (&origin_cwd, &origin_root) {
        (Some(cwd), Some(root)) => cwd.strip_prefix(root).unwrap_or_default(),
        _ => Vec::new(),
    };
    let root = if let Some(local_root) = checkouts.get(key_base(&project.key)) {
        local_root.clone()
    } else {
        // Under either spelling of the origin's HOME (as written, or resolved: Claude Code
        // records resolved paths), mapped under this HOME as Claude Code spells it (resolved).
        let in_home = origin
            .homes()
            .filter_map(SplitPath::parse)
            .find_map(|h| origin_root.as_ref()?.strip_prefix(&h));
        match (in_home, &origin_root) {
            (Some(rel), _) => join(local.home_for_places(), &rel, style),
            (None, Some(r)) if r.style == style => project.root.clone(),
            (None, r) => {
                let last = r
                    .as_ref()
                    .and_then(|r| r.components.last().copied())
                    .unwrap_or("project");
                join(local.home_for_places(), &["ferry-elsewhere", last], style)
            }
        }
    };
    let cwd = join(&root, &sub, style);
    let placed = ProjectRecord {
        key: project.key.clone(),
        slug: slug(&cwd),
        root,
        cwd,
        git: None,
    };
    let mapping = mapping_for(local, &placed)?;
    Ok(Placement {
        project: placed,
        mapping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(home: &str) -> MachineRecord {
        let win = home.contains(':');
        MachineRecord {
            id: home.into(),
            name: home.into(),
            os: if win { "windows" } else { "linux" }.into(),
            home: home.into(),
            tmp: if win {
                r"C:\Temp".into()
            } else {
                "/tmp".into()
            },
            claude_dir: format!("{home}{}.claude", if win { '\\' } else { '/' }),
            claude_tmp: if win {
                r"C:\Temp\claude".into()
            } else {
                "/tmp/claude-0".into()
            },
            last_seen_ms: 0,
            seen_ms: Default::default(),
            home_real: None,
            retired: Default::default(),
        }
    }

    fn project(key: &str, root: &str, cwd: &str) -> ProjectRecord {
        ProjectRecord {
            key: key.into(),
            root: root.into(),
            cwd: cwd.into(),
            slug: slug(cwd),
            git: None,
        }
    }

    #[test]
    fn a_local_checkout_decides() {
        let (al, bob) = (machine("/home/al"), machine("/Users/bob"));
        let checkouts = HashMap::from([(
            "github.com/o/r".to_string(),
            "/Users/bob/work/r".to_string(),
        )]);
        let p = place(
            &bob,
            &checkouts,
            &al,
            &project(
                "github.com/o/r//pkg",
                "/home/al/src/r",
                "/home/al/src/r/pkg",
            ),
        )
        .unwrap();
        assert_eq!(p.project.cwd, "/Users/bob/work/r/pkg");
        assert_eq!(p.project.slug, "-Users-bob-work-r-pkg");
        assert_eq!(
            p.mapping.get(ferry_sync::codec::Var::ProjectRoot),
            Some("/Users/bob/work/r")
        );
    }

    #[test]
    fn a_home_reached_through_a_symlink_is_taken_resolved_on_both_sides() {
        let mut al = machine("/home/al");
        al.home_real = Some("/data/al".into());
        let mut bob = machine("/home/bob");
        bob.home_real = Some("/vol/bob".into());
        let p = place(
            &bob,
            &HashMap::new(),
            &al,
            &project("~/notes", "/data/al/notes", "/data/al/notes"),
        )
        .unwrap();
        assert_eq!(p.project.cwd, "/vol/bob/notes");
        assert_eq!(p.project.slug, "-vol-bob-notes");
    }

    #[test]
    fn otherwise_home_relative_then_absolute() {
        let (al, bob, win) = (
            machine("/home/al"),
            machine("/Users/bob"),
            machine(r"C:\Users\bob"),
        );
        let none = HashMap::new();
        let p = place(
            &bob,
            &none,
            &al,
            &project("~/notes", "/home/al/notes", "/home/al/notes"),
        )
        .unwrap();
        assert_eq!(p.project.cwd, "/Users/bob/notes");
        let w = place(
            &win,
            &none,
            &al,
            &project("~/notes", "/home/al/notes/x", "/home/al/notes/x/y"),
        )
        .unwrap();
        assert_eq!(w.project.cwd, r"C:\Users\bob\notes\x\y");
        assert_eq!(w.project.slug, "C--Users-bob-notes-x-y");
        let abs = place(
            &bob,
            &none,
            &al,
            &project("/srv/data", "/srv/data", "/srv/data"),
        )
        .unwrap();
        assert_eq!(abs.project.cwd, "/srv/data");
        let far = place(
            &win,
            &none,
            &al,
            &project("/srv/data", "/srv/data", "/srv/data"),
        )
        .unwrap();
        assert_eq!(far.project.cwd, r"C:\Users\bob\ferry-elsewhere\data");
    }
}
