//! Paths of any machine handled as strings. ferry on Linux must reason about a Windows machine's
//! `C:\Users\bob\proj` and a Mac's `/Users/bob/proj`, so it never uses `std::path` for them.

/// Which OS convention spelled a path; decides separators, drive letters and case rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathStyle {
    /// `/`-separated, case-sensitive (Linux, macOS).
    Unix,
    /// Drive letter, `\` or `/` separators, case-insensitive.
    Windows,
}

impl PathStyle {
    /// The style of this machine, for paths it produces itself.
    pub const NATIVE: PathStyle = if cfg!(windows) {
        PathStyle::Windows
    } else {
        PathStyle::Unix
    };

    /// Guesses the style from an absolute path's spelling: a drive letter or UNC prefix is Windows.
    pub fn of(path: &str) -> PathStyle {
        let b = path.as_bytes();
        let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
        if drive || path.starts_with("\\\\") {
            PathStyle::Windows
        } else {
            PathStyle::Unix
        }
    }

    /// The separator this style writes.
    pub fn separator(self) -> char {
        match self {
            PathStyle::Unix => '/',
            PathStyle::Windows => '\\',
        }
    }

    /// Whether `c` separates components in this style.
    pub fn is_separator(self, c: char) -> bool {
        c == '/' || (self == PathStyle::Windows && c == '\\')
    }
}

/// An absolute path split into its root (`/`, `C:`) and its non-empty components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitPath<'a> {
    /// The style the path was spelled in.
    pub style: PathStyle,
    /// `""` for Unix, the drive (`C:`, upper-cased on output) or UNC prefix for Windows.
    pub root: &'a str,
    /// The components between separators, `.` and empty ones dropped.
    pub components: Vec<&'a str>,
}

impl<'a> SplitPath<'a> {
    /// Splits an absolute path; `None` when it is not absolute in its own style.
    pub fn parse(path: &'a str) -> Option<SplitPath<'a>> {
        let style = PathStyle::of(path);
        let (root, rest) = match style {
            PathStyle::Unix => (path.get(..1).filter(|r| *r == "/")?, &path[1..]),
            PathStyle::Windows if path.starts_with("\\\\") => ("\\\\", &path[2..]),
            PathStyle::Windows => {
                let rest = &path[2..];
                if !rest.starts_with(['\\', '/']) {
                    return None;
                }
                (&path[..2], rest)
            }
        };
        let components = rest
            .split(|c| style.is_separator(c))
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        Some(SplitPath {
            style,
            root: if style == PathStyle::Unix { "" } else { root },
            components,
        })
    }

    /// The path spelled with `sep` between components (a drive letter is upper-cased).
    pub fn join_with(&self, sep: &str) -> String {
        let mut out = match self.style {
            PathStyle::Unix => String::new(),
            PathStyle::Windows if self.is_unc() => sep.repeat(2),
            PathStyle::Windows => self.root.to_ascii_uppercase(),
        };
        let lead = self.style == PathStyle::Unix || !self.is_unc();
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 || lead {
                out.push_str(sep);
            }
            out.push_str(c);
        }
        if self.components.is_empty() && self.style == PathStyle::Unix {
            out.push_str(sep);
        }
        out
    }

    /// Whether this is a Windows UNC path (`\\server\share`).
    pub fn is_unc(&self) -> bool {
        self.root == "\\\\"
    }

    /// The canonical spelling in its own style: native separators, no trailing separator.
    pub fn canonical(&self) -> String {
        self.join_with(&self.style.separator().to_string())
    }

    /// The components of `self` below `base`, or `None` if `self` is not inside it.
    /// Windows compares case-insensitively, as its filesystems do.
    pub fn strip_prefix(&self, base: &SplitPath<'_>) -> Option<Vec<&'a str>> {
        if self.style != base.style || base.components.len() > self.components.len() {
            return None;
        }
        let eq = |a: &str, b: &str| match self.style {
            PathStyle::Unix => a == b,
            PathStyle::Windows => a.eq_ignore_ascii_case(b),
        };
        if !eq(self.root, base.root) {
            return None;
        }
        let inside = base
            .components
            .iter()
            .zip(&self.components)
            .all(|(a, b)| eq(a, b));
        inside.then(|| self.components[base.components.len()..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_and_canonical_forms() {
        let w = SplitPath::parse(r"c:\Users\bob\\proj\").unwrap();
        assert_eq!(w.style, PathStyle::Windows);
        assert_eq!(w.canonical(), r"C:\Users\bob\proj");
        assert_eq!(w.join_with("/"), "C:/Users/bob/proj");
        let u = SplitPath::parse("/home/al//x/./").unwrap();
        assert_eq!(u.canonical(), "/home/al/x");
        assert_eq!(SplitPath::parse("/").unwrap().canonical(), "/");
        assert!(SplitPath::parse("relative/x").is_none());
        assert!(SplitPath::parse("C:relative").is_none());
    }

    #[test]
    fn strip_prefix_respects_components_and_case_rules() {
        let p = |s| SplitPath::parse(s).unwrap();
        assert_eq!(
            p("/home/al/x/y").strip_prefix(&p("/home/al")),
            Some(vec!["x", "y"])
        );
        assert_eq!(p("/home/alice").strip_prefix(&p("/home/al")), None);
        assert_eq!(
            p(r"C:\Users\Bob\r").strip_prefix(&p("c:/users/bob")),
            Some(vec!["r"])
        );
        assert_eq!(p("/Users/bob/r").strip_prefix(&p("/users/bob")), None);
    }
}
