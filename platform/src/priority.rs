//! Background work that yields the CPU to requests: the daemon's expanding of other machines'
//! files ahead of use runs on a thread of its own at a lower priority (on Linux), so that on a
//! busy machine, or at a first mount where it starts as thousands of lookups arrive, requests
//! get a core first.

/// Lowers the calling thread's CPU priority for the rest of its life (Linux: nice 19, which
/// still gets a share of a busy core; elsewhere nothing, see below). Raising it back needs
/// privileges an ordinary user lacks, so only call it on a thread made for the background
/// work. Best effort: failing leaves the priority as it was.
pub fn lower_this_thread() -> std::io::Result<()> {
    imp::lower()
}

#[cfg(target_os = "linux")]
mod imp {
    use nix::libc;

    pub fn lower() -> std::io::Result<()> {
        // SAFETY: plain system calls on this thread's own id. On Linux a thread has a nice
        // value of its own, set through its id (setpriority(2), NOTES).
        let tid = unsafe { libc::gettid() };
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Left as it is elsewhere: macOS's background band throttles the thread's I/O as well, and
/// Windows schedules strictly by priority (a starved thread waits seconds for a boost); the
/// warming takes the view's lock for each file, which requests then could wait on.
#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn lower() -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_can_lower_itself() {
        std::thread::spawn(super::lower_this_thread)
            .join()
            .unwrap()
            .expect("lowering a thread made for it");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_thread_that_asks_is_lowered() {
        use nix::libc;
        let nice = |tid: libc::pid_t| {
            let path = format!("/proc/self/task/{tid}/stat");
            let stat = std::fs::read_to_string(path).unwrap();
            // Field 19 (nice), counted after the command name's closing parenthesis.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse::<i32>().unwrap()
        };
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        let before = nice(me);
        let other = std::thread::spawn(move || {
            super::lower_this_thread().unwrap();
            // SAFETY: as above.
            let tid = unsafe { libc::gettid() };
            (nice(tid), nice(me))
        })
        .join()
        .unwrap();
        assert_eq!(
            other,
            (19, before),
            "the background thread is at 19, the caller not"
        );
        assert_eq!(nice(me), before);
    }
}
