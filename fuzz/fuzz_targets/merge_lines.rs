//! Fuzzes the transcript merge (DESIGN.md invariant 4): up to three versions, each line of which
//! may be a JSON object with a `uuid`. Every line of every version is in the result, a uuid
//! outside the common prefix appears once, and merging a version with itself changes nothing.
//! Run: `fuzz/run.sh merge_lines 60`.
#![no_main]

use ferry_sync::merge::{merge_lines, uuid_of};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

/// Lines without their `\n`.
fn lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\n").unwrap_or(l))
        .collect()
}

/// Lines whose first byte is `u` become `{"uuid":"<the rest, hex>"}`, so uuids are common.
fn shape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in raw.split_inclusive(|&b| b == b'\n') {
        match l.strip_prefix(b"u") {
            Some(rest) => {
                let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
                let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
                out.extend_from_slice(format!("{{\"uuid\":\"{hex}\"}}").as_bytes());
                if l.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            None => out.extend_from_slice(l),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let versions: Vec<Vec<u8>> = data.split(|&b| b == 0xFE).take(3).map(shape).collect();
    let refs: Vec<&[u8]> = versions.iter().map(Vec::as_slice).collect();
    let merged = merge_lines(&refs);
    for v in &refs {
        assert_eq!(merge_lines(&[v, v]), v.to_vec(), "merging a version with itself");
    }
    let split: Vec<Vec<&[u8]>> = refs.iter().map(|v| lines(v)).collect();
    let prefix = (0..)
        .take_while(|&i| split.iter().all(|v| i < v.len() && v[i] == split[0][i]))
        .count();
    let out = lines(&merged);
    let mut count: HashMap<String, usize> = HashMap::new();
    for l in &out {
        if let Some(u) = uuid_of(l) {
            *count.entry(u).or_default() += 1;
        }
    }
    let in_prefix: HashMap<String, usize> = split
        .first()
        .map(|v| &v[..prefix.min(v.len())])
        .into_iter()
        .flatten()
        .filter_map(|l| uuid_of(l))
        .fold(HashMap::new(), |mut m, u| {
            *m.entry(u).or_default() += 1;
            m
        });
    for v in &split {
        for l in v {
            match uuid_of(l) {
                Some(u) => {
                    let n = count.get(&u).copied().unwrap_or(0);
                    assert!(n >= 1, "a line with uuid {u} was lost");
                    let allowed = in_prefix.get(&u).copied().unwrap_or(0).max(1);
                    assert!(n <= allowed, "uuid {u} appears {n} times");
                }
                None => assert!(out.contains(l), "a line without uuid was lost"),
            }
        }
    }
});
