//! The launchd agent: `ferry mount --foreground` when the user logs in, started again if it
//! crashes (not after a clean `ferry unmount`), and given 40 s after SIGTERM at logout to
//! unmount, commit and push.

use super::{Dirs, Plan, Spec, command, text, xml_escape};

/// The agent's label, which is also its file name.
pub const LABEL: &str = "dev.ferry.mount";

fn string(s: &str) -> String {
    format!("<string>{}</string>", xml_escape(s))
}

/// The property list's text.
pub fn plist(spec: &Spec) -> String {
    let mut env = String::new();
    for (k, v) in &spec.env {
        env.push_str(&format!("\t\t<key>{}</key>{}\n", xml_escape(k), string(v)));
    }
    let log = string(&text(&spec.log));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `ferry service install`; `ferry service uninstall` removes it. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \t<key>Label</key>{}\n\
         \t<key>ProgramArguments</key>\n\
         \t<array>{}<string>mount</string><string>--foreground</string></array>\n\
         \t<key>EnvironmentVariables</key>\n\
         \t<dict>\n{env}\t</dict>\n\
         \t<key>RunAtLoad</key><true/>\n\
         \t<key>KeepAlive</key>\n\
         \t<dict><key>SuccessfulExit</key><false/></dict>\n\
         \t<key>ThrottleInterval</key><integer>10</integer>\n\
         \t<key>ExitTimeOut</key><integer>40</integer>\n\
         \t<key>ProcessType</key><string>Interactive</string>\n\
         \t<key>StandardOutPath</key>{log}\n\
         \t<key>StandardErrorPath</key>{log}\n\
         </dict>\n\
         </plist>\n",
        string(LABEL),
        string(&text(&spec.exe)),
    )
}

/// The install plan: the agent in `~/Library/LaunchAgents`, loaded into the user's GUI domain
/// (which starts it, since it runs at load). `uid` names the domain.
pub fn plan(spec: &Spec, dirs: &Dirs, uid: &str) -> Plan {
    let file = dirs
        .home
        .join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"));
    let domain = format!("gui/{uid}");
    let file_text = text(&file);
    let service = format!("{domain}/{LABEL}");
    Plan {
        manager: super::Manager::Launchd,
        // Unloading an older copy first lets a reinstall take the new definition; launchd
        // starts nothing at login that is not in this directory, so writing it is enabling it.
        enable: vec![command(&["launchctl", "bootout", &service])],
        start: vec![command(&["launchctl", "bootstrap", &domain, &file_text])],
        disable: vec![command(&["launchctl", "bootout", &service])],
        contents: plist(spec).into_bytes(),
        file,
    }
}
