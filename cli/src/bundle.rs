//! `ferry export SESSION -o FILE` and `ferry import FILE`: one session as a single portable
//! file, for moving it without a shared remote (a USB stick, e-mail). The bundle holds the
//! session's transcript and its directory (tool results, subagents) in portable form, with the
//! exporting machine's and project's records, so the importing machine places and expands it
//! as it would a fetched session. Nothing in a bundle is trusted: paths are checked like a
//! remote's, and sizes are bounded.

use crate::command::Ctx;
use crate::state::{self, State};
use crate::view::View;
use anyhow::{Context, Result, bail};
use ferry_fs::foreign::{candidates, key_base};
use ferry_fs::placement::place;
use ferry_sync::codec::{Codec, Format};
use ferry_sync::merge::merge_lines;
use ferry_sync::store::{MachineRecord, ProjectRecord, RelPath, mapping_for};
use ferry_sync::view::snapshots;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

const FORMAT: &str = "ferry-session-1";
/// Largest bundle accepted.
const MAX_BUNDLE: u64 = 512 << 20;

/// One file of a bundle.
#[derive(Serialize, Deserialize)]
struct BundleFile {
    /// Path inside the project directory.
    rel: String,
    mtime_ms: i64,
    /// Portable bytes, when they are UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// Portable bytes in hex otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

/// The bundle.
#[derive(Serialize, Deserialize)]
struct Bundle {
    format: String,
    session: String,
    origin: MachineRecord,
    project: ProjectRecord,
    files: Vec<BundleFile>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Every file under view dir `dir`, relative to `base`.
fn walk(view: &View, base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for (name, is_dir) in view.list(&base.join(dir))? {
        let rel = dir.join(&name);
        if is_dir {
            walk(view, base, &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// Session `s` as a bundle: its transcript and its directory, in portable form.
fn bundle_of(st: &State, s: &crate::sessions::Session) -> Result<Bundle> {
    let config = st.config()?;
    let me = state::machine_record(&config)?;
    let store = st.open_store()?;
    let snaps = snapshots(&store, &me.id)?;
    let links = crate::projects::load_links(st)?;
    let foreign = crate::projects::foreign_view(st, &snaps, &me, &links);
    let slug = s
        .path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .context("session outside a project directory")?
        .to_string();
    let project = match foreign.projects_by_slug.get(&slug) {
        Some(p) => p.clone(),
        // Not committed yet: the project as the transcript's cwd names it.
        None => ferry_sync::upper::project_for_cwd(
            &slug,
            s.summary.cwd.as_deref(),
            Path::new(&me.home),
            &crate::projects::load_links(st)?,
            true,
        )
        .with_context(|| format!("cannot tell which project {slug} belongs to"))?,
    };
    let codec = Codec::new(&mapping_for(&me, &project)?);
    let view = View::open(st, &me)?;
    let base = PathBuf::from(&slug);
    let mut rels = vec![PathBuf::from(format!("{}.jsonl", s.id))];
    if view
        .list(&base)
        .map(|l| l.iter().any(|(n, d)| *d && *n == s.id))
        .unwrap_or(false)
    {
        walk(&view, &base, Path::new(&s.id), &mut rels)?;
    }
    let mut files = Vec::new();
    for rel in rels {
        let (bytes, mtime_ms) = view.read(&base.join(&rel))?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let portable = codec.virtualise(&bytes, Format::for_file_name(name));
        let (text, hexed) = match String::from_utf8(portable) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(hex(e.as_bytes()))),
        };
        files.push(BundleFile {
            rel: rel.to_str().context("non-UTF-8 name")?.to_string(),
            mtime_ms,
            text,
            hex: hexed,
        });
    }
    Ok(Bundle {
        format: FORMAT.into(),
        session: s.id.clone(),
        origin: me,
        project,
        files,
    })
}

/// `ferry export`.
pub fn export(session: &str, output: &Path, force: bool, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let to_stdout = output == Path::new("-");
    if to_stdout && ui.json {
        return Err(crate::ui::fail(
            crate::ui::Kind::Usage,
            "--json and `-o -` both write to stdout: give the bundle a file with -o FILE",
        ));
    }
    let st = ctx.state()?;
    let all = crate::sessions::collect(st)?;
    let s = crate::sessions::find(&all, session)?;
    let bundle = bundle_of(st, s)?;
    let n = bundle.files.len();
    // The whole transcript is in there: this user's alone, like the session itself.
    let data = serde_json::to_vec(&bundle)?;
    if to_stdout {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&data)
            .and_then(|()| out.flush())
            .context("writing the bundle to stdout")?;
        ui.note(format_args!(
            "exported session {} ({n} file(s)) to stdout; on the other machine: `ferry import FILE`",
            s.id
        ));
        return Ok(());
    }
    crate::files::write_private_to(output, &data, force)?;
    let doc = json!({"session": s.id, "path": output, "files": n, "bytes": data.len()});
    ui.out(&doc, || {
        format!(
            "exported session {} ({n} file(s)) to {}; on the other machine: `ferry import {}`",
            s.id,
            output.display(),
            output.display()
        )
    });
    Ok(())
}

/// The bundle's bytes from `input` (`-`: stdin), refusing more than [`MAX_BUNDLE`].
fn read_bounded(input: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let source: Box<dyn Read> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(input).with_context(|| format!("reading {}", input.display()))?,
        )
    };
    let mut data = Vec::new();
    source
        .take(MAX_BUNDLE + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", input.display()))?;
    if data.len() as u64 > MAX_BUNDLE {
        bail!(
            "{} holds more than {MAX_BUNDLE} bytes, more than a session bundle may be",
            input.display()
        );
    }
    Ok(data)
}

/// Writes one file of a bundle of `session` into the project directory `dir`, expanded by
/// `codec`: a transcript already here keeps every line of both; another file the newer.
fn write_file(session: &str, f: &BundleFile, codec: &Codec, dir: &Path) -> Result<()> {
    let rel =
        RelPath::new(&f.rel).with_context(|| format!("bad path {:?} in the bundle", f.rel))?;
    let inside = rel.as_str() == format!("{}.jsonl", session)
        || rel.as_str().starts_with(&format!("{}/", session));
    if !inside {
        bail!(
            "{} in the bundle is not part of session {}",
            rel.as_str(),
            session
        );
    }
    let portable = match (&f.text, &f.hex) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(h)) => unhex(h).with_context(|| format!("bad hex for {}", rel.as_str()))?,
        _ => bail!("no content for {} in the bundle", rel.as_str()),
    };
    let name = rel.as_str().rsplit('/').next().unwrap_or_default();
    let bytes = codec.expand(&portable, Format::for_file_name(name));
    let target = dir.join(rel.as_str());
    let current_mtime = std::fs::metadata(&target)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64);
    let bytes = match std::fs::read(&target) {
        // Already here: a transcript keeps every line of both; another file the newer.
        Ok(existing) if rel.is_lines() => merge_lines(&[&existing, &bytes]),
        Ok(existing) => {
            let theirs_newer = std::fs::metadata(&target)?
                .modified()?
                .duration_since(UNIX_EPOCH)
                .is_ok_and(|d| (d.as_millis() as i64) < f.mtime_ms);
            if theirs_newer { bytes } else { existing }
        }
        Err(_) => bytes,
    };
    crate::files::write_private(&target, &bytes)?;
    // The later of the two: a kept or merged newer file must not look older.
    let mtime = current_mtime.map_or(f.mtime_ms, |c| c.max(f.mtime_ms));
    let file = std::fs::File::options().write(true).open(&target)?;
    file.set_modified(UNIX_EPOCH + Duration::from_millis(mtime.max(0) as u64))?;
    Ok(())
}

/// `ferry import`.
pub fn import(input: &Path, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let config = ctx.config()?;
    let me = state::machine_record(config)?;
    let data = read_bounded(input)?;
    let bundle: Bundle = serde_json::from_slice(&data)
        .with_context(|| format!("{} is not a ferry session bundle", input.display()))?;
    if bundle.format != FORMAT {
        bail!(
            "{} has format {:?}; this ferry reads {FORMAT}",
            input.display(),
            bundle.format
        );
    }
    ferry_sync::store::RelPath::new(&format!("{}.jsonl", bundle.session))
        .context("the bundle's session id is not a valid name")?;
    let store = st.open_store()?;
    let snaps = snapshots(&store, &me.id)?;
    let own = snaps.iter().find(|s| s.machine.id == me.id);
    let links = crate::projects::load_links(st)?;
    // The project's place by the daemon's rule (see ferry_fs::places).
    let base = key_base(&bundle.project.key);
    let mut book = ferry_fs::places::PlaceBook::load(&st.places());
    let candidates = candidates(own, &links);
    book.decide(base, candidates.get(base).map_or(&[], Vec::as_slice));
    let roots: std::collections::HashMap<String, String> = book
        .root(base)
        .map(|r| (base.to_string(), r.to_string()))
        .into_iter()
        .collect();
    let placement = place(&me, &roots, &bundle.origin, &bundle.project)
        .context("placing the bundle's project on this machine")?;
    let codec = Codec::new(&placement.mapping);
    let dir = state::mount_point()?.join(&placement.project.slug);
    let mut written = 0;
    for f in &bundle.files {
        write_file(&bundle.session, f, &codec, &dir)?;
        written += 1;
    }
    let doc = json!({"session": bundle.session, "dir": dir, "files": written});
    ui.out(&doc, || {
        format!(
            "imported session {} ({written} file(s)) into {}; resume it in {} with `claude --resume {}`",
            bundle.session,
            dir.display(),
            placement.project.cwd,
            bundle.session
        )
    });
    Ok(())
}
