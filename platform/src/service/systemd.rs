//! The systemd user unit: `ferry mount --foreground` at login, restarted after a crash, and
//! stopped with SIGTERM at logout or shutdown (the daemon then unmounts, commits and pushes
//! within its deadline, so the unit allows it 40 s).

use super::{Dirs, Plan, Spec, command, text};

/// The unit's name.
pub const UNIT: &str = "ferry.service";

/// Quotes one word for a unit file: inside double quotes, with `\` and `"` escaped, and with
/// `%` (specifiers) and, for command lines, `$` (variables) doubled.
fn quote(word: &str, command: bool) -> String {
    let mut out = String::from("\"");
    for ch in word.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if command => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The unit file's text.
pub fn unit(spec: &Spec) -> String {
    let mut env = String::new();
    for (k, v) in &spec.env {
        env.push_str(&format!(
            "Environment={}\n",
            quote(&format!("{k}={v}"), false)
        ));
    }
    format!(
        "# Written by `ferry service install`; `ferry service uninstall` removes it.\n\
         [Unit]\n\
         Description=ferry: Claude Code sessions from all your machines in ~/.claude/projects\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={} mount --foreground\n\
         {env}\
         Restart=on-failure\n\
         RestartSec=5\n\
         KillMode=mixed\n\
         TimeoutStopSec=60\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        quote(&text(&spec.exe), true)
    )
}

/// The install plan: the unit in the user's systemd directory, enabled, and started now.
pub fn plan(spec: &Spec, dirs: &Dirs) -> Plan {
    let config = dirs
        .xdg_config
        .clone()
        .unwrap_or_else(|| dirs.home.join(".config"));
    Plan {
        manager: super::Manager::Systemd,
        file: config.join("systemd/user").join(UNIT),
        contents: unit(spec).into_bytes(),
        enable: vec![
            command(&["systemctl", "--user", "daemon-reload"]),
            command(&["systemctl", "--user", "enable", UNIT]),
        ],
        start: vec![command(&["systemctl", "--user", "start", UNIT])],
        disable: vec![
            command(&["systemctl", "--user", "disable", "--now", UNIT]),
            command(&["systemctl", "--user", "daemon-reload"]),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn odd_characters_in_paths_are_quoted_for_systemd() {
        assert_eq!(
            quote(r#"/a b/%h/$X/"q"\"#, true),
            r#""/a b/%%h/$$X/\"q\"\\""#
        );
        assert_eq!(quote("A=$X%", false), r#""A=$X%%""#);
    }

    #[test]
    fn the_unit_goes_under_xdg_config_home_when_set() {
        let spec = Spec {
            exe: "/usr/bin/ferry".into(),
            env: vec![],
            log: PathBuf::new(),
        };
        let mut dirs = Dirs {
            home: "/home/u".into(),
            xdg_config: None,
            state: PathBuf::new(),
        };
        assert_eq!(
            plan(&spec, &dirs).file,
            PathBuf::from("/home/u/.config/systemd/user/ferry.service")
        );
        dirs.xdg_config = Some("/cfg".into());
        assert_eq!(
            plan(&spec, &dirs).file,
            PathBuf::from("/cfg/systemd/user/ferry.service")
        );
    }
}
