//! Reference-model property test of the core: random sequences of Claude Code's operations,
//! mixed with other machines' commits arriving out of band, run on the core and on a plain
//! in-memory model of what the view should show; after every step the results and the whole
//! tree must agree.

mod common;

use common::{B_ROOT, Rig, now_ms};
use ferry_fs::core::SetAttr;
use ferry_fs::upper::{Kind, SetTime};
use ferry_sync::merge::{merge_lines, uuid_of};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

/// Names inside every top directory: the universe is closed under renames of same-depth dirs.
const FILES: [&str; 3] = ["x.jsonl", "y.txt", "d/z.jsonl"];

#[derive(Clone, Debug)]
enum Op {
    Create {
        file: usize,
        excl: bool,
    },
    Append {
        file: usize,
    },
    PWrite {
        file: usize,
        off: u16,
        len: u8,
    },
    Truncate {
        file: usize,
        len: u16,
    },
    Touch {
        file: usize,
    },
    Unlink {
        file: usize,
    },
    Mkdir {
        dir: usize,
    },
    Rmdir {
        dir: usize,
    },
    RenameFile {
        a: usize,
        b: usize,
    },
    RenameDir {
        a: usize,
        b: usize,
        deep: bool,
    },
    Foreign {
        file: usize,
        append: bool,
        newer: bool,
    },
    ForeignDelete {
        file: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..9usize;
    prop_oneof![
        1 => (f.clone(), any::<bool>()).prop_map(|(file, excl)| Op::Create { file, excl }),
        3 => f.clone().prop_map(|file| Op::Append { file }),
        1 => (f.clone(), 0..300u16, 1..40u8).prop_map(|(file, off, len)| Op::PWrite { file, off, len }),
        1 => (f.clone(), 0..200u16).prop_map(|(file, len)| Op::Truncate { file, len }),
        1 => f.clone().prop_map(|file| Op::Touch { file }),
        2 => f.clone().prop_map(|file| Op::Unlink { file }),
        1 => (0..6usize).prop_map(|dir| Op::Mkdir { dir }),
        1 => (0..6usize).prop_map(|dir| Op::Rmdir { dir }),
        1 => (f.clone(), f.clone()).prop_map(|(a, b)| Op::RenameFile { a, b }),
        1 => (0..3usize, 0..3usize, any::<bool>()).prop_map(|(a, b, deep)| Op::RenameDir { a, b, deep }),
        3 => (0..3usize, any::<bool>(), any::<bool>())
            .prop_map(|(file, append, newer)| Op::Foreign { file, append, newer }),
        1 => (0..3usize).prop_map(|file| Op::ForeignDelete { file }),
    ]
}

/// Bytes and mtime (ms).
type Content = (Vec<u8>, i64);

#[derive(Clone, Debug, Default)]
struct MFile {
    upper: Option<(Vec<u8>, i64)>,
    foreign: Option<(Vec<u8>, i64)>,
    whiteout: Option<i64>,
    /// Other machines' versions up to this mtime are held by the upper file for good.
    absorbed: Option<i64>,
}

/// What the view last served for a transcript (the core's `steady`): its next merge keeps
/// these lines first.
#[derive(Clone, Debug)]
enum Shown {
    Upper,
    Bytes(Vec<u8>),
}

/// What the view should be.
struct Model {
    shown: std::cell::RefCell<BTreeMap<String, Shown>>,
    tops: [String; 3],
    files: BTreeMap<String, MFile>,
    udirs: BTreeSet<String>,
    b_files: BTreeMap<String, Vec<u8>>,
    a_root: String,
    counter: i64,
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(a, _)| a)
}

fn holds(ours: &[u8], theirs: &[u8]) -> bool {
    let mut uuids = HashSet::new();
    let mut plain = HashSet::new();
    for l in ours.split_inclusive(|&b| b == b'\n') {
        match uuid_of(l) {
            Some(u) => {
                uuids.insert(u);
            }
            None => {
                plain.insert(l.strip_suffix(b"\n").unwrap_or(l).to_vec());
            }
        }
    }
    theirs
        .split_inclusive(|&b| b == b'\n')
        .all(|l| match uuid_of(l) {
            Some(u) => uuids.contains(&u),
            None => plain.contains(l.strip_suffix(b"\n").unwrap_or(l)),
        })
}

#[derive(Clone, Debug, PartialEq)]
enum MNode {
    Dir,
    /// Content, mtime, and whether it is served from the upper file as it is.
    File(Vec<u8>, i64, bool),
}

impl Model {
    fn file_paths(&self) -> Vec<String> {
        self.tops
            .iter()
            .flat_map(|t| FILES.iter().map(move |f| format!("{t}/{f}")))
            .collect()
    }

    fn dir_paths(&self) -> Vec<String> {
        self.tops
            .iter()
            .flat_map(|t| [t.clone(), format!("{t}/d")])
            .collect()
    }

    fn visible_foreign(&self, p: &str) -> Option<(Vec<u8>, i64)> {
        let f = self.files.get(p)?;
        let (c, m) = f.foreign.clone()?;
        match f.whiteout {
            Some(w) if m <= w => None,
            _ => Some((c, m)),
        }
    }

    /// What the view shows at `p`: a transcript served before keeps the lines it showed first
    /// when a new merge still holds them all.
    fn node(&self, p: &str) -> Option<MNode> {
        let node = self.merged(p);
        if !p.ends_with(".jsonl") {
            return node;
        }
        let mut shown = self.shown.borrow_mut();
        match node {
            Some(MNode::File(c, m, false)) => {
                let upper = self.files.get(p).and_then(|f| f.upper.clone());
                let earlier = match shown.get(p) {
                    Some(Shown::Upper) => upper.map(|u| u.0),
                    Some(Shown::Bytes(b)) => Some(b.clone()),
                    None => None,
                };
                let c = match earlier {
                    Some(e) if !c.starts_with(&e) && holds(&c, &e) => merge_lines(&[&e, &c]),
                    _ => c,
                };
                shown.insert(p.to_string(), Shown::Bytes(c.clone()));
                Some(MNode::File(c, m, false))
            }
            Some(MNode::File(c, m, true)) => {
                shown.insert(p.to_string(), Shown::Upper);
                Some(MNode::File(c, m, true))
            }
            other => other,
        }
    }

    /// The view at `p` from both layers alone.
    fn merged(&self, p: &str) -> Option<MNode> {
        if p.is_empty() || self.udirs.contains(p) {
            return Some(MNode::Dir);
        }
        let up = self.files.get(p).and_then(|f| f.upper.clone());
        let absorbed = self.files.get(p).and_then(|f| f.absorbed);
        match (up, self.visible_foreign(p)) {
            (Some((u, um)), None) => Some(MNode::File(u, um, true)),
            (Some((u, um)), Some((_, fm))) if absorbed.is_some_and(|a| fm <= a) => {
                Some(MNode::File(u, um, true))
            }
            (None, Some((f, fm))) => Some(MNode::File(f, fm, false)),
            (Some((u, um)), Some((f, fm))) => {
                if p.ends_with(".jsonl") {
                    if holds(&u, &f) {
                        Some(MNode::File(u, um, true))
                    } else if um <= fm {
                        Some(MNode::File(merge_lines(&[&u, &f]), um.max(fm), false))
                    } else {
                        Some(MNode::File(merge_lines(&[&f, &u]), um.max(fm), false))
                    }
                } else if um >= fm {
                    Some(MNode::File(u, um, true))
                } else {
                    Some(MNode::File(f, fm, false))
                }
            }
            (None, None) => {
                let prefix = format!("{p}/");
                self.files
                    .keys()
                    .any(|k| k.starts_with(&prefix) && self.visible_foreign(k).is_some())
                    .then_some(MNode::Dir)
            }
        }
    }

    fn mkdir_all(&mut self, p: &str) {
        let mut cur = String::new();
        for c in p.split('/').filter(|c| !c.is_empty()) {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            self.udirs.insert(cur.clone());
        }
    }

    fn has_children(&self, d: &str) -> bool {
        self.file_paths()
            .into_iter()
            .chain(self.dir_paths())
            .any(|p| parent(&p) == d && self.node(&p).is_some())
    }

    fn parent_ok(&self, p: &str) -> Result<(), i32> {
        match self.node(parent(p)) {
            Some(MNode::Dir) => Ok(()),
            Some(_) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    /// Makes `p` a plain upper file holding what the view shows (the core's copy-up).
    fn copy_up(&mut self, p: &str) {
        if let Some(MNode::File(c, m, false)) = self.node(p) {
            self.mkdir_all(parent(p));
            let fm = self.visible_foreign(p).map(|f| f.1);
            let f = self.files.entry(p.to_string()).or_default();
            f.upper = Some((c, m));
            f.absorbed = fm;
        }
    }

    /// Forgets the marks of `p` and everything under it (the core's `forget`).
    fn forget(&mut self, p: &str) {
        let prefix = format!("{p}/");
        for (k, f) in self.files.iter_mut() {
            if k == p || k.starts_with(&prefix) {
                f.absorbed = None;
            }
        }
    }

    /// What resolving every path does: an upper file that holds everything another machine's
    /// version has takes it in for good.
    fn settle(&mut self) {
        for p in self.file_paths() {
            let Some(f) = self.files.get(&p) else {
                continue;
            };
            let absorbed = f.absorbed;
            let (Some((u, um)), Some((fc, fm))) = (f.upper.clone(), self.visible_foreign(&p))
            else {
                continue;
            };
            if absorbed.is_some_and(|a| fm <= a) {
                continue;
            }
            let covered = if p.ends_with(".jsonl") {
                holds(&u, &fc)
            } else {
                um >= fm
            };
            if covered {
                self.files.get_mut(&p).unwrap().absorbed = Some(fm);
            }
        }
    }

    fn upper_mut(&mut self, p: &str) -> &mut (Vec<u8>, i64) {
        self.files.get_mut(p).unwrap().upper.as_mut().unwrap()
    }

    /// The whiteout an unlink of `p` (upper mtime `ours`) leaves.
    fn retire(&mut self, p: &str, ours: Option<i64>, keep_dir: bool) {
        let Some((_, fm)) = self.visible_foreign(p) else {
            return;
        };
        let until = match ours {
            Some(o) if o >= fm => now_ms().max(fm),
            _ => fm,
        };
        self.files.get_mut(p).unwrap().whiteout = Some(until);
        if keep_dir {
            self.mkdir_all(parent(p));
        }
    }

    fn file(&self, p: &str) -> Result<(Vec<u8>, i64, bool), i32> {
        match self.node(p) {
            Some(MNode::File(c, m, s)) => Ok((c, m, s)),
            Some(MNode::Dir) => Err(libc::EISDIR),
            None => Err(libc::ENOENT),
        }
    }

    fn apply(&mut self, op: &Op, files: &[String], dirs: &[String]) -> Result<(), i32> {
        match op {
            Op::Create { file, excl } => {
                let p = &files[*file];
                match self.node(p) {
                    Some(_) if *excl => return Err(libc::EEXIST),
                    Some(MNode::Dir) => return Err(libc::EISDIR),
                    Some(_) => return Ok(()),
                    None => {}
                }
                self.parent_ok(p)?;
                self.mkdir_all(parent(p));
                self.files.entry(p.clone()).or_default().upper = Some((Vec::new(), now_ms()));
            }
            Op::Append { file } | Op::PWrite { file, .. } => {
                let p = &files[*file];
                self.file(p)?;
                self.copy_up(p);
                let u = self.upper_mut(p);
                match op {
                    Op::PWrite { off, len, .. } => {
                        let (off, len) = (*off as usize, *len as usize);
                        if u.0.len() < off + len {
                            u.0.resize(off + len, 0);
                        }
                        u.0[off..off + len].fill(b'#');
                    }
                    _ => {
                        self.counter += 1;
                        let l = format!("{{\"uuid\":\"a{}\",\"n\":1}}\n", self.counter);
                        self.upper_mut(p).0.extend_from_slice(l.as_bytes());
                    }
                }
                self.upper_mut(p).1 = now_ms();
            }
            Op::Truncate { file, len } => {
                let p = &files[*file];
                let (_, _, served) = self.file(p)?;
                if *len == 0 && !served {
                    self.mkdir_all(parent(p));
                    let fm = self.visible_foreign(p).map(|f| f.1);
                    let f = self.files.get_mut(p.as_str()).unwrap();
                    f.upper = Some((Vec::new(), now_ms()));
                    f.absorbed = fm;
                } else {
                    self.copy_up(p);
                    let u = self.upper_mut(p);
                    u.0.resize(*len as usize, 0);
                    u.1 = now_ms();
                }
            }
            Op::Touch { file } => {
                let p = &files[*file];
                self.file(p)?;
                self.copy_up(p);
                self.upper_mut(p).1 = 1_000_000;
            }
            Op::Unlink { file } => {
                let p = &files[*file];
                self.file(p)?;
                let ours = self
                    .files
                    .get_mut(p.as_str())
                    .unwrap()
                    .upper
                    .take()
                    .map(|u| u.1);
                self.forget(p);
                self.retire(p, ours, true);
            }
            Op::Mkdir { dir } => {
                let d = &dirs[*dir];
                if self.node(d).is_some() {
                    return Err(libc::EEXIST);
                }
                self.parent_ok(d)?;
                self.mkdir_all(d);
            }
            Op::Rmdir { dir } => {
                let d = &dirs[*dir];
                match self.node(d) {
                    None => return Err(libc::ENOENT),
                    Some(MNode::File(..)) => return Err(libc::ENOTDIR),
                    Some(MNode::Dir) => {}
                }
                if self.has_children(d) {
                    return Err(libc::ENOTEMPTY);
                }
                self.udirs.remove(d.as_str());
            }
            Op::RenameFile { a, b } => {
                let (a, b) = (&files[*a], &files[*b]);
                let (content, mtime, served) = self.file(a)?;
                if a == b {
                    return Ok(());
                }
                self.parent_ok(b)?;
                match self.node(b) {
                    Some(MNode::Dir) => return Err(libc::EISDIR),
                    Some(_) => {
                        let ours = self
                            .files
                            .get_mut(b.as_str())
                            .unwrap()
                            .upper
                            .take()
                            .map(|u| u.1);
                        self.forget(b);
                        self.retire(b, ours, true);
                    }
                    None => {}
                }
                self.mkdir_all(parent(b));
                let ours = self.files.get_mut(a.as_str()).unwrap().upper.take();
                let moved = if served {
                    ours.clone().unwrap()
                } else {
                    (content, mtime)
                };
                self.files.entry(b.clone()).or_default().upper = Some(moved);
                self.forget(a);
                self.forget(b);
                self.retire(a, ours.map(|u| u.1), true);
            }
            Op::RenameDir { a, b, deep } => {
                let suffix = if *deep { "/d" } else { "" };
                let (a, b) = (
                    format!("{}{suffix}", self.tops[*a]),
                    format!("{}{suffix}", self.tops[*b]),
                );
                match self.node(&a) {
                    None => return Err(libc::ENOENT),
                    Some(MNode::File(..)) => return Err(libc::ENOTDIR),
                    Some(MNode::Dir) => {}
                }
                if a == b {
                    return Ok(());
                }
                self.parent_ok(&b)?;
                if self.node(&b).is_some() {
                    if self.has_children(&b) {
                        return Err(libc::ENOTEMPTY);
                    }
                    self.udirs.remove(&b);
                }
                self.mkdir_all(parent(&b));
                let prefix = format!("{a}/");
                let under: Vec<(String, MNode, Option<Content>)> = self
                    .file_paths()
                    .into_iter()
                    .filter(|p| p.starts_with(&prefix))
                    .filter_map(|p| {
                        let n = self.node(&p)?;
                        let up = self.files.get(&p).and_then(|f| f.upper.clone());
                        Some((p, n, up))
                    })
                    .collect();
                if self.udirs.contains(&a) {
                    let moved: Vec<String> = self
                        .udirs
                        .iter()
                        .filter(|d| **d == a || d.starts_with(&prefix))
                        .cloned()
                        .collect();
                    for d in moved {
                        self.udirs.remove(&d);
                        self.udirs.insert(format!("{b}{}", &d[a.len()..]));
                    }
                    for p in self
                        .file_paths()
                        .into_iter()
                        .filter(|p| p.starts_with(&prefix))
                    {
                        if let Some(u) = self.files.get_mut(&p).and_then(|f| f.upper.take()) {
                            let to = format!("{b}{}", &p[a.len()..]);
                            self.files.entry(to).or_default().upper = Some(u);
                        }
                    }
                } else {
                    self.udirs.insert(b.clone());
                }
                self.forget(&a);
                self.forget(&b);
                // The core copies what only the view had up in place first, which makes the
                // source's parent a real directory; as on a local disk, it stays.
                self.mkdir_all(parent(&a));
                for (p, n, up) in under {
                    let to = format!("{b}{}", &p[a.len()..]);
                    if let MNode::File(c, m, false) = n {
                        self.mkdir_all(parent(&to));
                        self.files.entry(to).or_default().upper = Some((c, m));
                    }
                    self.retire(&p, up.map(|u| u.1), false);
                }
            }
            Op::Foreign { .. } | Op::ForeignDelete { .. } => unreachable!("applied by the test"),
        }
        Ok(())
    }
}

fn b_line(n: i64) -> String {
    format!("{{\"uuid\":\"b{n}\",\"cwd\":\"{B_ROOT}\",\"text\":\"see {B_ROOT}/f{n}.rs\"}}\n")
}

/// Reads the whole tree through the core.
fn core_tree(rig: &Rig, dir: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
    for (name, attr) in rig.fs.readdir(Path::new(dir)).unwrap() {
        let name = name.to_str().unwrap();
        let p = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        match attr.kind {
            Kind::Dir => {
                out.insert(p.clone(), None);
                core_tree(rig, &p, out);
            }
            Kind::File => {
                let data = rig.read(&p).unwrap();
                assert_eq!(data.len() as u64, attr.size, "{p}: size");
                out.insert(p, Some(data));
            }
        }
    }
}

fn model_tree(m: &Model) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for d in m.dir_paths() {
        if m.node(&d) == Some(MNode::Dir) {
            out.insert(d, None);
        }
    }
    for f in m.file_paths() {
        if let Some(MNode::File(c, _, _)) = m.node(&f) {
            out.insert(f, Some(c));
        }
    }
    out
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rig = Rig::new();
    let mut m = Model {
        shown: Default::default(),
        tops: [rig.slug(), "-p".into(), "-q".into()],
        files: BTreeMap::new(),
        udirs: BTreeSet::new(),
        b_files: BTreeMap::new(),
        a_root: rig.a_root(),
        counter: 0,
    };
    let files = m.file_paths();
    let dirs = m.dir_paths();
    let mut clock = 0i64;
    for (step, op) in ops.iter().enumerate() {
        let p = |i: usize| Path::new(&files[i]).to_path_buf();
        let got: Result<(), i32> = match op {
            Op::Foreign {
                file,
                append,
                newer,
            } => {
                clock += 1;
                let rel = FILES[*file];
                let mut text = if *append {
                    m.b_files.get(rel).cloned().unwrap_or_default()
                } else {
                    Vec::new()
                };
                text.extend_from_slice(b_line(clock).as_bytes());
                let mtime = now_ms() + if *newer { 3_600_000 } else { -3_600_000 } + clock;
                rig.b_writes(rel, &text, mtime);
                let local = String::from_utf8(text.clone())
                    .unwrap()
                    .replace(B_ROOT, &m.a_root);
                m.files
                    .entry(format!("{}/{rel}", m.tops[0]))
                    .or_default()
                    .foreign = Some((local.into_bytes(), mtime));
                m.b_files.insert(rel.to_string(), text);
                m.settle();
                continue;
            }
            Op::ForeignDelete { file } => {
                let rel = FILES[*file];
                if m.b_files.remove(rel).is_some() {
                    clock += 1;
                    rig.b_deletes(rel, now_ms() + 7_200_000 + clock);
                    m.files
                        .get_mut(&format!("{}/{rel}", m.tops[0]))
                        .unwrap()
                        .foreign = None;
                }
                continue;
            }
            Op::Create { file, excl } => rig.fs.create(&p(*file), 0o600, *excl).map(|_| ()),
            Op::Append { file } => {
                let l = format!("{{\"uuid\":\"a{}\",\"n\":1}}\n", m.counter + 1);
                rig.fs.write(&p(*file), 0, l.as_bytes(), true).map(|_| ())
            }
            Op::PWrite { file, off, len } => rig
                .fs
                .write(&p(*file), *off as u64, &vec![b'#'; *len as usize], false)
                .map(|_| ()),
            Op::Truncate { file, len } => rig
                .fs
                .setattr(
                    &p(*file),
                    SetAttr {
                        size: Some(*len as u64),
                        ..SetAttr::default()
                    },
                )
                .map(|_| ()),
            Op::Touch { file } => rig
                .fs
                .setattr(
                    &p(*file),
                    SetAttr {
                        mtime: Some(SetTime::At(1_000_000_000_000)),
                        ..SetAttr::default()
                    },
                )
                .map(|_| ()),
            Op::Unlink { file } => rig.fs.unlink(&p(*file)),
            Op::Mkdir { dir } => rig.fs.mkdir(Path::new(&dirs[*dir]), 0o700).map(|_| ()),
            Op::Rmdir { dir } => rig.fs.rmdir(Path::new(&dirs[*dir])),
            Op::RenameFile { a, b } => rig.fs.rename(&p(*a), &p(*b), false),
            Op::RenameDir { a, b, deep } => {
                let s = if *deep { "/d" } else { "" };
                rig.fs.rename(
                    Path::new(&format!("{}{s}", m.tops[*a])),
                    Path::new(&format!("{}{s}", m.tops[*b])),
                    false,
                )
            }
        }
        .map_err(|e| e.errno);
        let want = m.apply(op, &files, &dirs);
        m.settle();
        prop_assert_eq!(got, want, "step {}: {:?}", step, op);
        let mut tree = BTreeMap::new();
        core_tree(&rig, "", &mut tree);
        let expected = model_tree(&m);
        if tree != expected {
            let show = |t: &BTreeMap<String, Option<Vec<u8>>>| {
                t.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}: {:?}",
                            v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            prop_assert!(
                false,
                "step {step} {op:?}\ncore:\n{}\nmodel:\n{}",
                show(&tree),
                show(&expected)
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    #[cfg_attr(windows, ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)")]
    fn the_core_behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
