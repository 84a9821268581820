//! The progress bar of a fetch or push that a command waits on (the first fetch of `ferry init`,
//! `ferry sync` without a daemon, `ferry restore` fetching history): a spinner until the
//! remote has said how many objects it sends, then objects of the total, and bytes.

use ferry_sync::engine::Transferred;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar that says `what` is happening; hidden under `--quiet` (and by indicatif when stderr
/// is not a terminal).
pub fn new(quiet: bool, what: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {wide_bar}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Shows how far the transfer `op` has got (once anything is known: until then the bar says
/// what it was made with).
pub fn show(bar: &ProgressBar, op: &str, so_far: Transferred) {
    if so_far == Transferred::default() {
        // A transfer after another (the push after a fetch): its name, not the last counts.
        if bar.length().is_some() {
            bar.unset_length();
            bar.set_message(words(op, so_far));
        }
        return;
    }
    if so_far.total_objects > 0 {
        bar.set_length(so_far.total_objects);
        bar.set_position(so_far.objects.min(so_far.total_objects));
    }
    bar.set_message(words(op, so_far));
}

/// `fetching: 1234/5678 objects, 12.30 MiB`, or as much of it as is known (the bar's words and
/// `ferry status`'s).
pub fn words(op: &str, t: Transferred) -> String {
    let verb = match op {
        "push" => "pushing",
        "fetch" => "fetching",
        other => other,
    };
    let mut s = verb.to_string();
    if t.total_objects > 0 {
        s += &format!(": {}/{} objects", t.objects, t.total_objects);
    }
    if t.bytes > 0 {
        s += if t.total_objects > 0 { ", " } else { ": " };
        s += &HumanBytes(t.bytes).to_string();
    }
    s
}

/// Runs `work`, showing a bar meanwhile: `op` ("fetch", "push", or words of its own, such as
/// "sealing 3 branches") and how far `work` says it has got through the progress it is given.
pub fn shown<T>(
    ctx: &crate::command::Ctx,
    op: &str,
    work: impl FnOnce(&ferry_sync::engine::Progress) -> T,
) -> T {
    let bar = new(
        ctx.ui.quiet || ctx.ui.json,
        &words(op, Transferred::default()),
    );
    let progress = ferry_sync::engine::Progress::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    /// Stops the bar's thread however the work ends.
    struct Done<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                show(&bar, op, progress.so_far());
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let _done = Done(&done);
        work(&progress)
    });
    bar.finish_and_clear();
    out
}

/// Fetches every branch of `url` into `store` with `history`, showing the bar meanwhile (the
/// history `ferry restore` asks for, everything `ferry encrypt` seals); what did not open.
pub fn fetch_shown(
    ctx: &crate::command::Ctx,
    store: &ferry_sync::store::Store,
    url: &str,
    history: ferry_sync::engine::History,
    sealing: Option<&ferry_sync::crypt::sealing::Sealing>,
) -> Result<Vec<String>, ferry_sync::engine::RemoteError> {
    shown(ctx, "fetch", |progress| {
        ferry_sync::engine::fetch_once(store, url, history, progress, sealing)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_say_objects_of_the_total_and_bytes_as_they_become_known() {
        let t = |objects, total_objects, bytes| Transferred {
            objects,
            total_objects,
            bytes,
        };
        assert_eq!(words("fetch", t(0, 0, 0)), "fetching");
        assert_eq!(words("fetch", t(0, 0, 2048)), "fetching: 2.00 KiB");
        assert_eq!(
            words("fetch", t(1234, 5678, 12_900_000)),
            "fetching: 1234/5678 objects, 12.30 MiB"
        );
        assert_eq!(words("push", t(3, 3, 0)), "pushing: 3/3 objects");
    }

    #[test]
    fn a_transfer_after_another_drops_the_last_ones_counts() {
        let bar = ProgressBar::hidden();
        bar.set_message("syncing");
        show(&bar, "fetch", Transferred::default());
        assert_eq!(bar.message(), "syncing", "nothing known yet");
        let done = Transferred {
            objects: 9,
            total_objects: 9,
            bytes: 4096,
        };
        show(&bar, "fetch", done);
        assert_eq!((bar.position(), bar.length()), (9, Some(9)));
        show(&bar, "push", Transferred::default());
        assert_eq!((bar.message().as_ref(), bar.length()), ("pushing", None));
    }
}
