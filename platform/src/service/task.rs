//! The Windows scheduled task: `ferry mount` when this user logs on, as this user, without
//! elevation. `ferry mount` starts the daemon detached and returns, so the task ends at once;
//! the daemon lives on until `ferry unmount` or logoff. Writes land in the upper layer as they
//! happen, so a daemon killed at logoff loses nothing: the next mount commits what is pending.
//!
//! A task cannot carry environment variables, so when `FERRY_HOME` or `CLAUDE_CONFIG_DIR` must
//! be passed, the task runs `cmd.exe /d /c set "K=V" && … && "ferry.exe" mount`.

use super::{Dirs, Plan, Spec, command, text, xml_escape};

/// The task's name.
pub const NAME: &str = "ferry";

/// This user as Task Scheduler names them: `DOMAIN\user` (empty off Windows).
pub fn user() -> String {
    let var = |k| std::env::var(k).unwrap_or_default();
    if !cfg!(windows) {
        return String::new();
    }
    match (var("USERDOMAIN"), var("USERNAME")) {
        (d, u) if d.is_empty() => u,
        (d, u) => format!("{d}\\{u}"),
    }
}

/// The program and arguments the task runs.
fn action(spec: &Spec) -> Result<(String, String), String> {
    let exe = text(&spec.exe);
    if spec.env.is_empty() {
        return Ok((exe, "mount".into()));
    }
    let mut line = String::from("/d /c ");
    for (k, v) in &spec.env {
        if v.contains(['"', '%']) || k.contains(['"', '%', '=']) {
            return Err(format!(
                "{k}={v} cannot be passed to a scheduled task (it holds \" or %); set it in your user environment instead and run this again"
            ));
        }
        line.push_str(&format!("set \"{k}={v}\" && "));
    }
    line.push_str(&format!("\"{exe}\" mount"));
    Ok((r"%SystemRoot%\System32\cmd.exe".into(), line))
}

/// The task definition's XML text (Task Scheduler schema 1.2).
pub fn xml(spec: &Spec, user: &str) -> Result<String, String> {
    let (command, arguments) = action(spec)?;
    let user = xml_escape(user);
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n\
         <Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\r\n\
         \x20 <RegistrationInfo><Description>ferry: Claude Code sessions from all your machines. Written by `ferry service install`; `ferry service uninstall` removes it.</Description></RegistrationInfo>\r\n\
         \x20 <Triggers><LogonTrigger><Enabled>true</Enabled><UserId>{user}</UserId></LogonTrigger></Triggers>\r\n\
         \x20 <Principals><Principal id=\"Author\"><UserId>{user}</UserId><LogonType>InteractiveToken</LogonType><RunLevel>LeastPrivilege</RunLevel></Principal></Principals>\r\n\
         \x20 <Settings>\r\n\
         \x20   <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\r\n\
         \x20   <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\r\n\
         \x20   <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\r\n\
         \x20   <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>\r\n\
         \x20   <RestartOnFailure><Interval>PT1M</Interval><Count>3</Count></RestartOnFailure>\r\n\
         \x20   <Enabled>true</Enabled>\r\n\
         \x20 </Settings>\r\n\
         \x20 <Actions Context=\"Author\"><Exec><Command>{}</Command><Arguments>{}</Arguments></Exec></Actions>\r\n\
         </Task>\r\n",
        xml_escape(&command),
        xml_escape(&arguments),
    ))
}

/// UTF-16LE with a byte order mark, as `schtasks /XML` reads it.
fn utf16(s: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in s.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

/// The install plan: the definition in the state dir, registered with `schtasks` (replacing an
/// older one), then run once now.
pub fn plan(spec: &Spec, dirs: &Dirs, user: &str) -> Result<Plan, String> {
    let file = dirs.state.join("ferry-task.xml");
    let file_text = text(&file);
    Ok(Plan {
        manager: super::Manager::Task,
        contents: utf16(&xml(spec, user)?),
        enable: vec![command(&[
            "schtasks", "/Create", "/TN", NAME, "/XML", &file_text, "/F",
        ])],
        start: vec![command(&["schtasks", "/Run", "/TN", NAME])],
        disable: vec![command(&["schtasks", "/Delete", "/TN", NAME, "/F"])],
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_go_through_cmd_and_unsafe_ones_are_refused() {
        let mut spec = Spec {
            exe: r"C:\Program Files\ferry\ferry.exe".into(),
            env: vec![],
            log: Default::default(),
        };
        assert_eq!(
            action(&spec).unwrap(),
            (r"C:\Program Files\ferry\ferry.exe".into(), "mount".into())
        );
        spec.env = vec![("FERRY_HOME".into(), r"D:\ferry & co".into())];
        let (command, args) = action(&spec).unwrap();
        assert!(command.ends_with("cmd.exe"));
        assert_eq!(
            args,
            r#"/d /c set "FERRY_HOME=D:\ferry & co" && "C:\Program Files\ferry\ferry.exe" mount"#
        );
        spec.env = vec![("FERRY_HOME".into(), r"D:\100%".into())];
        assert!(action(&spec).unwrap_err().contains("user environment"));
    }

    #[test]
    fn the_definition_is_utf16_with_a_bom() {
        let b = utf16("<é>");
        assert_eq!(b, [0xFF, 0xFE, b'<', 0, 0xE9, 0, b'>', 0]);
    }
}
