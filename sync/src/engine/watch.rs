//! Waiting on a transfer's thread. A transfer that keeps moving may take as long as it needs (a
//! first fetch over a slow link); one that never starts moving is given up soon, one that stops
//! moving once libgit2's socket timeout has had time to end it, and every transfer after a much
//! longer bound.

use super::remote::Progress;
use std::future::Future;
use std::time::{Duration, Instant};

/// libgit2's read timeout, in `net_timeout`s. Generous: after a pack is sent the server may
/// check it for a while before it answers, and a slow link drains what the socket buffered
/// without any callback saying so.
pub(super) const SOCKET_FACTOR: u32 = 4;

/// How long a wait may go on without the transfer moving.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Before the transfer has moved at all (a server that accepts and never answers).
    pub first: Duration,
    /// Between two moves, once it has moved.
    pub between: Duration,
    /// In all: a remote trickling a byte at a time cannot hold the transfer slot forever.
    pub total: Duration,
}

impl Bounds {
    /// The bounds for the engine's `net_timeout`: 2, 8 and 120 times it (30 s, 2 min and
    /// 30 min by default).
    pub(super) fn for_timeout(net_timeout: Duration) -> Bounds {
        Bounds {
            first: net_timeout * 2,
            between: net_timeout * SOCKET_FACTOR * 2,
            total: net_timeout * 120,
        }
    }
}

/// Waits for `task` within `bounds`, watching `progress`; on giving up, cancels it through
/// `progress` and says why.
pub(super) async fn watch<T>(
    task: impl Future<Output = T>,
    progress: Progress,
    bounds: Bounds,
) -> Result<T, String> {
    let out = watch_inner(task, &progress, bounds).await;
    if out.is_err() {
        progress.cancel();
    }
    out
}

async fn watch_inner<T>(
    task: impl Future<Output = T>,
    progress: &Progress,
    bounds: Bounds,
) -> Result<T, String> {
    tokio::pin!(task);
    let start = Instant::now();
    let (mut seen, mut moved) = (progress.count(), start);
    let tick = (bounds.first / 4).max(Duration::from_millis(20));
    loop {
        if let Ok(out) = tokio::time::timeout(tick, &mut task).await {
            return Ok(out);
        }
        let now = Instant::now();
        let count = progress.count();
        if count != seen {
            (seen, moved) = (count, now);
        }
        if count == 0 && now - start >= bounds.first {
            return Err(format!("no answer within {:?}", bounds.first));
        }
        if now - moved >= bounds.between {
            return Err(format!("no progress for {:?}", bounds.between));
        }
        if now - start >= bounds.total {
            return Err(format!("still running after {:?}", bounds.total));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Bounds, Progress, watch};
    use std::time::{Duration, Instant};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    const MS: Duration = Duration::from_millis(1);

    fn bounds(first: u32, between: u32, total: u32) -> Bounds {
        Bounds {
            first: MS * first,
            between: MS * between,
            total: MS * total,
        }
    }

    /// Ticks `progress` every `every` for `runs`, then returns 7.
    async fn transfer(progress: Progress, every: Duration, runs: Duration) -> u32 {
        let start = Instant::now();
        while start.elapsed() < runs {
            tokio::time::sleep(every).await;
            progress.tick();
        }
        7
    }

    #[test]
    fn a_transfer_that_keeps_moving_outlasts_the_first_bound() {
        rt().block_on(async {
            let p = Progress::default();
            let task = transfer(p.clone(), MS * 10, MS * 500);
            assert_eq!(watch(task, p, bounds(100, 200, 60_000)).await, Ok(7));
        });
    }

    #[test]
    fn a_transfer_that_never_moves_is_given_up_after_the_first_bound() {
        rt().block_on(async {
            let start = Instant::now();
            let task = std::future::pending::<u32>();
            let err = watch(task, Progress::default(), bounds(100, 10_000, 60_000))
                .await
                .unwrap_err();
            assert!(err.contains("no answer"), "{err}");
            let took = start.elapsed();
            assert!(took >= MS * 100 && took < MS * 400, "{took:?}");
        });
    }

    #[test]
    fn a_transfer_that_stops_moving_is_given_up_after_the_between_bound() {
        rt().block_on(async {
            let p = Progress::default();
            let start = Instant::now();
            let task = async {
                transfer(p.clone(), MS * 10, MS * 200).await;
                std::future::pending::<u32>().await
            };
            let err = watch(task, p.clone(), bounds(100, 300, 60_000))
                .await
                .unwrap_err();
            assert!(err.contains("no progress"), "{err}");
            let took = start.elapsed();
            assert!(took >= MS * 500 && took < MS * 900, "{took:?}");
        });
    }

    #[test]
    fn a_transfer_that_moves_forever_is_given_up_after_the_total_bound() {
        rt().block_on(async {
            let p = Progress::default();
            let task = transfer(p.clone(), MS * 5, Duration::from_secs(60));
            let err = watch(task, p, bounds(100, 100, 300)).await.unwrap_err();
            assert!(err.contains("still running"), "{err}");
        });
    }
}
