//! Work spread over the machine's cores: sealing what an encrypted store pushes, and opening
//! what it fetched, is pure computation on thousands of small pieces (compress or inflate,
//! encrypt or decrypt, hash), which one core did alone in as long as the transfer took.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Most threads one call uses, whatever the machine has.
const MAX_THREADS: usize = 8;

/// `f` of every item of `items`, in their order, computed on as many threads as the machine has
/// cores (at most [`MAX_THREADS`]), each given `min_each` items at least: fewer are not worth
/// starting a thread, some 50 µs (this one works alone where no other thread starts). Each thread
/// takes the next item not taken yet, so one large item does not hold up the others. An error
/// stops the rest, and the first recorded is returned (not always that of the first item in
/// order); a panic in `f` stops them too, and is raised again here.
pub(crate) fn map_on_cores<T, R, E>(
    items: &[T],
    min_each: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
        .min(items.len() / min_each.max(1));
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let error: Mutex<Option<E>> = Mutex::new(None);
    let work = || {
        // Sets `failed` if `f` panics, so that the other threads stop too.
        let stop = StopOnUnwind(&failed);
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            match f(item) {
                Ok(r) => done.push((i, r)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                }
            }
        }
        std::mem::forget(stop);
        done
    };
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        // A thread the system refuses is one fewer: this one works too.
        let others: Vec<_> = (1..threads)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        let mut parts = vec![work()];
        for t in others {
            parts.push(t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        parts
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every item was done"))
        .collect())
}

/// Sets its flag when dropped, which only a panic does (it is forgotten otherwise): the other
/// threads then stop.
struct StopOnUnwind<'a>(&'a AtomicBool);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back in the items' order, each item done once.
    #[test]
    fn every_item_is_done_once_and_in_order() {
        let items: Vec<u64> = (0..1000).collect();
        let calls = AtomicUsize::new(0);
        let out = map_on_cores(&items, 16, |&i| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok::<_, ()>(i * i)
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), items.len());
    }

    /// The work is spread: more than one thread takes items where there is more than one core.
    #[test]
    fn more_than_one_thread_works_when_there_are_cores() {
        let items: Vec<u64> = (0..256).collect();
        let seen = Mutex::new(std::collections::HashSet::new());
        map_on_cores(&items, 16, |_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            // Long enough that one thread cannot take every item before another starts.
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok::<_, ()>(())
        })
        .unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(seen.lock().unwrap().len() > 1, cores > 1);
    }

    /// An error is returned, and the items not started yet are not done.
    #[test]
    fn an_error_is_returned_and_stops_the_rest() {
        let items: Vec<u64> = (0..2_000).collect();
        let calls = AtomicUsize::new(0);
        let out = map_on_cores(&items, 16, |&i| {
            calls.fetch_add(1, Ordering::Relaxed);
            if i == 40 {
                return Err(format!("item {i}"));
            }
            // Each item takes a while: the error stops the rest long before they are all done.
            std::thread::sleep(std::time::Duration::from_micros(500));
            Ok(i)
        });
        assert_eq!(out, Err("item 40".to_string()));
        assert!(calls.load(Ordering::Relaxed) < items.len() / 2);
    }

    /// A panic in one item stops the others, and is raised again to the caller.
    #[test]
    fn a_panic_stops_the_rest_and_is_raised_again() {
        let items: Vec<u64> = (0..2_000).collect();
        let calls = AtomicUsize::new(0);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            map_on_cores(&items, 16, |&i| {
                calls.fetch_add(1, Ordering::Relaxed);
                assert_ne!(i, 40, "item 40 panics");
                std::thread::sleep(std::time::Duration::from_micros(500));
                Ok::<_, ()>(i)
            })
        }));
        assert!(out.is_err());
        assert!(calls.load(Ordering::Relaxed) < items.len() / 2);
    }

    /// A few items are not worth a thread: they are done here.
    #[test]
    fn few_items_are_done_on_this_thread() {
        let here = std::thread::current().id();
        let out = map_on_cores(&[1, 2, 3], 16, |&i| {
            assert_eq!(std::thread::current().id(), here);
            Ok::<_, ()>(i + 1)
        })
        .unwrap();
        assert_eq!(out, vec![2, 3, 4]);
    }
}
