//! The upper layer: this machine's own `projects/` directory, the source of truth for its
//! branch. At start the engine reconciles it with the branch, committing whatever is newer, so a
//! crash never needs a journal to lose nothing.

use crate::project_key::{Link, git_state, project_key};
use crate::store::{
    Batch, Change, FileState, FileUpdate, MachineRecord, PlaceId, ProjectRecord, RelPath, Store,
    StoreError,
};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files never synced, wherever they appear: credentials and other secrets, by exact name.
pub const NEVER_SYNC: [&str; 11] = [
    ".credentials.json",
    ".env",
    ".envrc",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
];

/// Endings of key and certificate files, never synced either.
pub const NEVER_SYNC_ENDINGS: [&str; 5] = [".pem", ".key", ".p12", ".pfx", ".keystore"];

/// Names the mount uses for its own temporary files in the upper layer: never shown, never synced.
pub const TEMP_PREFIX: &str = ".ferry-tmp-";

/// Whether a file name is never synced: a secret, or one of ferry's own temporary files.
pub fn never_sync(name: &str) -> bool {
    NEVER_SYNC.contains(&name)
        || name.starts_with(".env.")
        || NEVER_SYNC_ENDINGS.iter().any(|e| name.ends_with(e))
        || name.starts_with(TEMP_PREFIX)
}

/// How much of a transcript is read to find its `cwd`.
pub const CWD_SCAN: u64 = 256 * 1024;

/// The working directory a session ran in, from the first line of `head` (the start of a
/// transcript) that names one.
pub fn cwd_in(head: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        cwd: Option<String>,
    }
    head.split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Line>(l).ok()?.cwd)
        .find(|c| !c.is_empty())
}

/// The working directory a session ran in, from the first transcript line that names one.
pub fn transcript_cwd(file: &Path) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(file)
        .ok()?
        .take(CWD_SCAN)
        .read_to_end(&mut buf)
        .ok()?;
    cwd_in(&buf)
}

/// How the key of a slug directory no project could be found for begins (`slug:<dir>`).
pub const SLUG_KEY: &str = "slug:";

/// The project whose root has the slug `slug`, among `known`, as a record at its root: Claude
/// Code keeps a project's memory under the slug of its git root, where no session may run, so
/// that directory belongs to the project (its key without the path below the root).
pub fn project_at_root(slug: &str, known: &[ProjectRecord]) -> Option<ProjectRecord> {
    let p = known
        .iter()
        .filter(|p| crate::slug::slug(&p.root) == slug)
        .min_by(|a, b| (&a.key, &a.root).cmp(&(&b.key, &b.root)))?;
    Some(ProjectRecord {
        key: p
            .key
            .split_once("//")
            .map_or(p.key.as_str(), |k| k.0)
            .to_string(),
        root: p.root.clone(),
        cwd: p.root.clone(),
        slug: slug.to_string(),
        git: p.git.clone(),
    })
}

/// The record of a slug directory whose sessions ran in `cwd` (`None`: no transcript names a
/// cwd, which gives a key naming the slug itself). `with_git` adds the checkout's state, which
/// walks the checkout: the mount leaves it out (a checkout at HOME would walk into the mount
/// itself) and the reconcile at the next start fills it in.
pub fn project_for_cwd(
    slug: &str,
    cwd: Option<&str>,
    home: &Path,
    links: &[Link],
    with_git: bool,
) -> Option<ProjectRecord> {
    let Some(cwd) = cwd else {
        // No transcript names a cwd (a memory-only dir): a key that names the slug itself.
        let home = home.to_str()?.to_string();
        return Some(ProjectRecord {
            key: format!("{SLUG_KEY}{slug}"),
            root: home.clone(),
            cwd: home,
            slug: slug.to_string(),
            git: None,
        });
    };
    let key = project_key(Path::new(cwd), Some(home), links).ok()?;
    let checkout = crate::project_key::discover(Path::new(cwd)).ok().flatten();
    let root = checkout
        .as_ref()
        .map_or_else(|| cwd.to_string(), |c| c.root.clone());
    Some(ProjectRecord {
        key: key.to_string(),
        git: if with_git {
            git_state(Path::new(&root))
        } else {
            None
        },
        root,
        cwd: cwd.to_string(),
        slug: slug.to_string(),
    })
}

/// The project record for a slug directory the branch does not know yet (a known one keeps its
/// recorded key: see [`reconcile`]).
pub fn project_for_dir(dir: &Path, home: &Path, links: &[Link]) -> Option<ProjectRecord> {
    let slug = dir.file_name()?.to_str()?.to_string();
    let mut transcripts: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    transcripts.sort();
    let cwd = transcripts.iter().find_map(|t| transcript_cwd(t));
    project_for_cwd(&slug, cwd.as_deref(), home, links, true)
}

/// What in `upper` differs from this machine's branch: new or changed files to commit, and
/// files gone from `upper` to record as deleted. `placed` holds the records of the slug dirs
/// where the view placed other machines' projects (by slug): a dir the branch does not know yet
/// belongs to that project, whatever key its cwd alone would give.
pub fn reconcile(
    upper: &Path,
    store: &Store,
    machine: &MachineRecord,
    links: &[Link],
    placed: &HashMap<String, ProjectRecord>,
) -> Result<Batch, StoreError> {
    let home = PathBuf::from(&machine.home);
    let own = match store.head(&machine.id, true)? {
        Some(h) => Some(store.snapshot("own", h)?),
        None => None,
    };
    // By place: each slug dir of this machine is one place, with its own record.
    let known: HashMap<PlaceId, ProjectRecord> = own
        .iter()
        .flat_map(|s| s.files.iter())
        .map(|f| (f.project.place(), (*f.project).clone()))
        .collect();
    let committed: HashMap<(PlaceId, String), crate::store::FileMeta> = own
        .iter()
        .flat_map(|s| s.files.iter())
        .map(|f| ((f.project.place(), f.rel.as_str().to_string()), f.meta))
        .collect();
    let mut batch = Batch::default();
    let mut seen: HashSet<(PlaceId, String)> = HashSet::new();
    let entries = match std::fs::read_dir(upper) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(batch),
        Err(e) => {
            return Err(StoreError::Io {
                path: upper.to_path_buf(),
                source: e,
            });
        }
    };
    let mut dirs: Vec<(PathBuf, ProjectRecord)> = Vec::new();
    for dir in entries.flatten() {
        let path = dir.path();
        if !dir.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // A directory the branch already knows keeps its project key, even if the checkout has
        // moved or its remote changed since: recomputing it would orphan every committed file.
        let slug = dir.file_name().to_string_lossy().into_owned();
        let recorded = known
            .values()
            .filter(|p| p.slug == slug)
            .min_by_key(|p| (p.key.starts_with(SLUG_KEY), &p.key))
            .or_else(|| placed.get(&slug))
            .cloned();
        if let Some(project) = recorded.or_else(|| project_for_dir(&path, &home, links)) {
            dirs.push((path, project));
        }
    }
    // A directory no transcript names a cwd for may be a project's root (its memory lives at
    // the git root's slug, where no session need run): it belongs to that project.
    let named: Vec<ProjectRecord> = dirs
        .iter()
        .map(|(_, p)| p)
        .chain(known.values())
        .chain(placed.values())
        .filter(|p| !p.key.starts_with(SLUG_KEY))
        .cloned()
        .collect();
    // What was committed under the slug's own key before is filed under the project now: the
    // old copy goes (its tombstone hides only that key's paths).
    let mut refiled: HashSet<PlaceId> = HashSet::new();
    for (_, project) in &mut dirs {
        if project.key.starts_with(SLUG_KEY)
            && let Some(root) = project_at_root(&project.slug, &named)
        {
            *project = root;
        }
        if !project.key.starts_with(SLUG_KEY) {
            let old = PlaceId {
                key: format!("{SLUG_KEY}{}", project.slug),
                slug: project.slug.clone(),
            };
            if known.contains_key(&old) {
                refiled.insert(old);
            }
        }
    }
    for (path, mut project) in dirs {
        if project.git.is_some() || Path::new(&project.root).exists() {
            project.git = git_state(Path::new(&project.root));
        }
        let mut files = Vec::new();
        walk(&path, "", &mut files);
        for (rel, local, md) in files {
            let key = (project.place(), rel.as_str().to_string());
            seen.insert(key.clone());
            let mtime = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            let same = committed.get(&key).is_some_and(|m| {
                m.state == FileState::Present && m.len == md.len() && m.mtime_ms == mtime
            });
            if !same {
                batch.files.push(FileUpdate {
                    place: project.place(),
                    rel,
                    change: Change::Write {
                        local,
                        dirty_from: None,
                    },
                });
            }
        }
        batch.projects.push(project);
    }
    let now = crate::engine::now_ms();
    // The places of each key in `upper`, to tell a file that is gone from one that a release
    // before places recorded in another place's dir (it collapsed a key's places into one).
    let mut places_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in &batch.projects {
        places_of.entry(&p.key).or_default().push(&p.slug);
    }
    for ((place, rel), meta) in &committed {
        // Satellites live in the config dir, not here: the daemon's mirror keeps them.
        if crate::satellite::is_satellite(rel) {
            continue;
        }
        // Deleted only if the file is really gone from where this machine keeps it, not merely
        // unaccounted for (an unreadable directory, a key that could not be computed), and not
        // held by another place of the project here.
        let here = |slug: &str| upper.join(slug).join(rel).exists();
        let gone = meta.state == FileState::Present
            && !seen.contains(&(place.clone(), rel.clone()))
            && known.contains_key(place)
            && (refiled.contains(place)
                || !here(&place.slug)
                    && !places_of
                        .get(place.key.as_str())
                        .is_some_and(|slugs| slugs.iter().any(|s| here(s))));
        if let Some(rel) = RelPath::new(rel).ok().filter(|_| gone) {
            batch.files.push(FileUpdate {
                place: place.clone(),
                rel,
                change: Change::Delete { at_ms: now },
            });
        }
    }
    Ok(batch)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(RelPath, PathBuf, std::fs::Metadata)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            tracing::warn!(path = %e.path().display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if never_sync(&name) {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if md.is_dir() {
            walk(&e.path(), &rel, out);
        } else if md.is_file() {
            match RelPath::new(&rel) {
                Ok(r) => out.push((r, e.path(), md)),
                Err(err) => tracing::warn!(error = %err, "skipping a file the store cannot hold"),
            }
        }
    }
}
