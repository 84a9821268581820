//! A command run under a wrapper program (`setpriv`, `time`) that then runs it: its program,
//! arguments, environment and directory carried over, so the wrapper sees what it was given.

use std::ffi::OsStr;
use std::process::Command;

/// `cmd` run as `wrapper ARGS... PROGRAM CMD-ARGS...`, with `cmd`'s environment changes
/// (`env`, `env_remove`) and directory. Not carried over: its stdio (the new command's to
/// set), `env_clear`, and what `CommandExt` sets (`arg0`, ids, process group, `pre_exec`).
pub fn under<I, S>(wrapper: impl AsRef<OsStr>, args: I, cmd: &Command) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut out = Command::new(wrapper);
    out.args(args).arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => out.env(key, v),
            None => out.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_wrapped_command_keeps_its_arguments_environment_and_directory() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo \"$0 $FERRY_WRAPPED_TEST $(pwd)\"", "arg0"])
            .env("FERRY_WRAPPED_TEST", "set")
            .env_remove("HOME")
            .current_dir("/");
        let out = under("env", ["--"], &cmd).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "arg0 set /\n");
    }
}
