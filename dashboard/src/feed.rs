//! Shared store reads behind the event streams: one read a tick for each thing watched
//! (an experiment, or the experiments list), however many pages watch it. Each page's
//! stream subscribes to the feed of what it shows and works out its own changes from
//! the snapshots; a feed starts with its first subscriber and ends when the last one
//! goes (or the dashboard closes). Without it every open page read every trial of its
//! experiment once a second: 64 pages of a 10,000-trial experiment kept both cores busy.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Why a snapshot could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The thing watched does not exist (any more).
    #[error("not found")]
    NotFound,
    /// The store failed.
    #[error("{0}")]
    Other(String),
}

/// One read of what a feed watches.
pub type Snapshot<T> = Arc<Result<T, Failure>>;

/// A feed's latest snapshot (`None` until its first read).
pub type Receiver<T> = watch::Receiver<Option<Snapshot<T>>>;

type Sender<T> = Arc<watch::Sender<Option<Snapshot<T>>>>;

/// The running feeds of one kind, by key.
pub struct Feeds<T> {
    running: Mutex<HashMap<String, Sender<T>>>,
}

impl<T> Default for Feeds<T> {
    fn default() -> Self {
        Feeds {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Send + Sync + 'static> Feeds<T> {
    /// Subscribes to the feed of `key`, starting it (reading with `load` every
    /// [`TICK`](crate::events::TICK)) when none runs. The receiver sees the feed's latest
    /// snapshot as changed, so a new page gets it at once.
    pub fn subscribe<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        closing: watch::Receiver<bool>,
        load: F,
    ) -> Receiver<T>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Failure>> + Send,
    {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = running.get(key) {
            let mut rx = tx.subscribe();
            rx.mark_changed();
            return rx;
        }
        let tx: Sender<T> = Arc::new(watch::Sender::new(None));
        let rx = tx.subscribe();
        running.insert(key.to_string(), tx.clone());
        drop(running);
        let (feeds, key) = (self.clone(), key.to_string());
        tokio::spawn(async move {
            let mut closing = closing;
            let mut interval = crate::events::ticker();
            loop {
                let ticked = tokio::select! {
                    _ = interval.tick() => true,
                    _ = closing.wait_for(|c| *c) => false,
                };
                if !ticked || *closing.borrow() || feeds.end_if_unwatched(&key, &tx) {
                    break;
                }
                let value = load().await;
                tx.send_replace(Some(Arc::new(value)));
            }
            feeds.remove(&key, &tx);
        });
        rx
    }

    /// Ends the feed `tx` of `key` when no page watches it; under the lock, so that a
    /// page subscribing meanwhile either joins it before or starts a new one after.
    fn end_if_unwatched(&self, key: &str, tx: &Sender<T>) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if tx.receiver_count() > 0 {
            return false;
        }
        if running.get(key).is_some_and(|t| Arc::ptr_eq(t, tx)) {
            running.remove(key);
        }
        true
    }

    fn remove(&self, key: &str, tx: &Sender<T>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(key).is_some_and(|t| Arc::ptr_eq(t, tx)) {
            running.remove(key);
        }
    }

    /// Feeds running now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A feed of `key` whose reads are counted in `reads`.
    fn watch_counted(
        feeds: &Arc<Feeds<usize>>,
        key: &str,
        closing: &watch::Sender<bool>,
        reads: &Arc<AtomicUsize>,
    ) -> Receiver<usize> {
        let reads = reads.clone();
        feeds.subscribe(key, closing.subscribe(), move || {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(n) }
        })
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pages_watching_one_thing_share_one_read_a_tick() {
        let feeds: Arc<Feeds<usize>> = Arc::default();
        let closing = watch::Sender::new(false);
        let reads = Arc::new(AtomicUsize::new(0));
        let mut pages: Vec<Receiver<usize>> = (0..3)
            .map(|_| watch_counted(&feeds, "exp", &closing, &reads))
            .collect();
        settle().await;
        assert_eq!(reads.load(Ordering::SeqCst), 1, "the first read is at once");
        for _ in 0..5 {
            tokio::time::advance(crate::events::TICK).await;
            settle().await;
        }
        // Three pages, six ticks: six reads, not eighteen.
        assert_eq!(reads.load(Ordering::SeqCst), 6);
        for p in &mut pages {
            assert!(p.has_changed().unwrap_or(false));
            assert_eq!(p.borrow_and_update().as_deref(), Some(&Ok(6)));
        }
        // A page opened later sees the latest snapshot at once, from the same feed.
        let mut late = watch_counted(&feeds, "exp", &closing, &reads);
        assert!(late.has_changed().unwrap_or(false));
        assert_eq!(late.borrow_and_update().as_deref(), Some(&Ok(6)));
        // Another experiment is another feed.
        let other = watch_counted(&feeds, "other", &closing, &reads);
        settle().await;
        assert_eq!(feeds.running(), 2);
        // When its pages go, a feed stops reading and ends.
        drop(pages);
        drop(late);
        let before = reads.load(Ordering::SeqCst);
        for _ in 0..3 {
            tokio::time::advance(crate::events::TICK).await;
            settle().await;
        }
        assert_eq!(feeds.running(), 1);
        // Only "other" still reads: one read a tick.
        assert_eq!(reads.load(Ordering::SeqCst), before + 3);
        // Closing the dashboard ends every feed.
        closing.send_replace(true);
        settle().await;
        assert_eq!(feeds.running(), 0);
        drop(other);
        tokio::time::advance(Duration::from_secs(5)).await;
        settle().await;
        assert_eq!(reads.load(Ordering::SeqCst), before + 3);
    }
}
