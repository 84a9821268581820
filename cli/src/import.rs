//! The first sync of `ferry init`: this machine's existing sessions committed into its branch
//! (with a progress bar over the bytes), then every other machine's fetched. Running it again
//! commits only what changed.

use crate::report::Report;
use crate::state::{self, Config, State};
use crate::sync_cmd::sync_here_locked;
use anyhow::Result;
use ferry_platform::mount::{MountState, mount_state};
use ferry_sync::secrets::{Finding, Policy};
use ferry_sync::store::{Batch, Change, Store};
use indicatif::{ProgressBar, ProgressStyle};

/// Files per commit while importing: each commit stays small and the bar moves.
const PER_COMMIT: usize = 500;

/// Input bytes per commit while importing, at most (a larger file is a commit of its own): the
/// commits' objects are held in memory until they are written as a pack.
const BYTES_PER_COMMIT: u64 = 16 << 20;

/// What the first sync did.
pub struct Imported {
    /// Files committed from the existing directory.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The fetch and push that followed (`None`: the view is mounted; the daemon syncs).
    pub sync: Option<Report>,
    /// Secrets found in what was imported, and what the policy did with each.
    pub secrets: Vec<Finding>,
}

/// What `ferry init` says of the secrets its import found, before anything else: nothing when
/// there were none.
pub fn secrets_said(found: &[Finding], policy: Policy) -> String {
    if found.is_empty() {
        return String::new();
    }
    let mut kinds: Vec<&str> = found.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let files = found
        .iter()
        .map(|f| (&f.project, &f.path))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let what = match policy {
        Policy::Redact => {
            "each was replaced by [REDACTED:kind] in what is pushed; your files keep them"
        }
        Policy::Block => "those files are held back until the secret is gone from them",
        Policy::Warn => {
            "they were pushed as they are (policy warn): revoke them, and consider `ferry init --secrets redact`"
        }
    };
    format!(
        "found {} secret(s) ({}) in {files} file(s): {what}; `ferry status` lists them\n",
        found.len(),
        kinds.join(", ")
    )
}

/// `batch` cut into the commits of an import: the files larger than [`BYTES_PER_COMMIT`] one
/// by one, and the others in parts of at most [`PER_COMMIT`] files and that many bytes.
fn parts_of(batch: &Batch, size: impl Fn(&Change) -> u64) -> (Vec<Batch>, Vec<Batch>) {
    let part = |files| Batch {
        projects: batch.projects.clone(),
        files,
    };
    let (mut big, mut parts): (Vec<Batch>, Vec<Batch>) = (Vec::new(), Vec::new());
    let mut held = 0;
    for f in &batch.files {
        let bytes = size(&f.change);
        match parts.last_mut() {
            _ if bytes > BYTES_PER_COMMIT => big.push(part(vec![f.clone()])),
            Some(p) if p.files.len() < PER_COMMIT && held + bytes <= BYTES_PER_COMMIT => {
                held += bytes;
                p.files.push(f.clone());
            }
            _ => {
                held = bytes;
                parts.push(part(vec![f.clone()]));
            }
        }
    }
    (big, parts)
}

/// Imports the existing sessions and fetches the others; quiet when `quiet`.
pub fn run(st: &State, config: &Config, quiet: bool, offline: bool) -> Result<Imported> {
    let mountpoint = state::mount_point()?;
    // A running daemon (or a mount) does this itself.
    let lock = st.take_lock();
    if mount_state(&mountpoint) != MountState::None || lock.is_err() {
        return Ok(Imported {
            files: 0,
            bytes: 0,
            sync: None,
            secrets: Vec::new(),
        });
    }
    let machine = state::machine_record(config)?;
    // The configured secrets policy applies to the first import too: it is pushed right after.
    let store = Store::init(&st.store())?.with_secrets(config.secrets);
    let links = crate::projects::load_links(st)?;
    let placed = crate::projects::placed(st);
    let batch = ferry_sync::upper::reconcile(&mountpoint, &store, &machine, &links, &placed)?;
    // Each file's size, looked up once: the parts, the packs and the progress bar each ask.
    let sizes: std::collections::HashMap<&std::path::Path, u64> = batch
        .files
        .iter()
        .filter_map(|f| match &f.change {
            Change::Write { local, .. } => Some((
                local.as_path(),
                std::fs::metadata(local).map_or(0, |m| m.len()),
            )),
            _ => None,
        })
        .collect();
    let size = |c: &Change| match c {
        Change::Write { local, .. } => sizes.get(local.as_path()).copied().unwrap_or(0),
        _ => 0,
    };
    let bytes: u64 = batch.files.iter().map(|f| size(&f.change)).sum();
    let bar = if quiet || batch.files.is_empty() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(bytes)
    };
    bar.set_style(
        ProgressStyle::with_template("importing {msg} {wide_bar} {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{} file(s)", batch.files.len()));
    let part_size = |b: &Batch| b.files.iter().map(|f| size(&f.change)).sum::<u64>();
    let (big, parts) = parts_of(&batch, size);
    // A file larger than a part is a commit of its own, written as loose objects: held in
    // memory for a pack, it would cost its whole size in memory.
    for part in &big {
        store.commit(&machine, part)?;
        bar.inc(part_size(part));
    }
    // The rest as packs, not a loose file per object; the branch moves once they are written.
    store.commit_packed(&machine, &parts, part_size, |b| bar.inc(part_size(b)))?;
    let secrets = store.take_findings();
    st.record_findings(&secrets);
    bar.finish_and_clear();
    if offline {
        // Set up without the remote: the first mount syncs.
        drop(lock);
        return Ok(Imported {
            files: batch.files.len(),
            bytes,
            sync: None,
            secrets,
        });
    }
    let bar = crate::transfer_bar::new(
        quiet || config.remote.is_none(),
        "fetching every machine's sessions and pushing this one's",
    );
    let report = sync_here_locked(st, config, &bar, false);
    drop(lock);
    bar.finish_and_clear();
    let report = report?;
    Ok(Imported {
        files: batch.files.len(),
        bytes,
        sync: Some(report),
        secrets,
    })
}
