//! An output's answer to "make everything so far durable": given at once (a synced file, a
//! flushed Kafka producer), or later, while the source reads on (the embedded channel, whose
//! lake commits a batch in its own time). A checkpoint waits for the answer before it is
//! written, so the position it records is never ahead of what the output holds.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// Whether the changes received up to a point are durable.
pub enum Durable {
    /// They are.
    Done,
    /// The answer comes on `answer`; after `timeout` from `asked_at` without one, it failed.
    Later {
        answer: Receiver<Result<(), String>>,
        asked_at: Instant,
        timeout: Duration,
        /// Who answers, for the error when it does not (e.g. "the lake writer").
        from: &'static str,
    },
}

impl Durable {
    /// The answer if it has come (or can no longer come), without waiting.
    pub fn try_answer(&self) -> Option<Result<(), String>> {
        match self {
            Durable::Done => Some(Ok(())),
            Durable::Later {
                answer,
                asked_at,
                timeout,
                from,
            } => match answer.try_recv() {
                Ok(result) => Some(result),
                Err(TryRecvError::Disconnected) => Some(Err(stopped(from))),
                Err(TryRecvError::Empty) if asked_at.elapsed() >= *timeout => {
                    Some(Err(too_late(from, *timeout)))
                }
                Err(TryRecvError::Empty) => None,
            },
        }
    }

    /// Waits for the answer (at most what is left of the timeout).
    pub fn wait(self) -> Result<(), String> {
        match self {
            Durable::Done => Ok(()),
            Durable::Later {
                answer,
                asked_at,
                timeout,
                from,
            } => match answer.recv_timeout(timeout.saturating_sub(asked_at.elapsed())) {
                Ok(result) => result,
                Err(RecvTimeoutError::Disconnected) => Err(stopped(from)),
                Err(RecvTimeoutError::Timeout) => Err(too_late(from, timeout)),
            },
        }
    }
}

fn stopped(from: &str) -> String {
    format!("{from} stopped before it had committed the changes")
}

fn too_late(from: &str, timeout: Duration) -> String {
    format!("{from} did not commit the changes within {timeout:?}")
}

/// An answer that did not come or was a failure, with the item it was to make safe.
#[derive(Debug, PartialEq)]
pub struct Unanswered<T> {
    pub reason: String,
    pub item: T,
}

/// Answers asked for one after another, each with what it makes safe once given (a
/// checkpoint): an output answers in the order it was asked.
pub struct InFlight<T> {
    queue: VecDeque<(Durable, T)>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            queue: VecDeque::new(),
        }
    }
}

impl<T> InFlight<T> {
    pub fn push(&mut self, durable: Durable, item: T) {
        self.queue.push_back((durable, item));
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The newest item whose answer has come (and every earlier one's), taken out with them;
    /// waits for answers only while more than `keep` are outstanding. A failed answer is the
    /// error, with its item.
    pub fn newest_answered(&mut self, keep: usize) -> Result<Option<T>, Unanswered<T>> {
        let mut newest = None;
        while let Some((durable, item)) = self.queue.pop_front() {
            let answer = if self.queue.len() >= keep {
                durable.wait()
            } else {
                match durable.try_answer() {
                    Some(answer) => answer,
                    None => {
                        self.queue.push_front((durable, item));
                        break;
                    }
                }
            };
            if let Err(reason) = answer {
                return Err(Unanswered { reason, item });
            }
            newest = Some(item);
        }
        Ok(newest)
    }

    /// Waits for every answer; the first failure is the error, with its item.
    pub fn wait_all(&mut self) -> Result<(), Unanswered<T>> {
        for (durable, item) in self.queue.drain(..) {
            if let Err(reason) = durable.wait() {
                return Err(Unanswered { reason, item });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later(timeout: Duration) -> (std::sync::mpsc::SyncSender<Result<(), String>>, Durable) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let durable = Durable::Later {
            answer: rx,
            asked_at: Instant::now(),
            timeout,
            from: "the lake writer",
        };
        (tx, durable)
    }

    #[test]
    fn an_answer_is_seen_once_it_comes() {
        let (tx, durable) = later(Duration::from_secs(60));
        assert!(durable.try_answer().is_none());
        tx.send(Err("table t stopped".into())).unwrap();
        assert_eq!(durable.try_answer(), Some(Err("table t stopped".into())));
    }

    #[test]
    fn a_side_gone_or_a_timeout_is_a_failure() {
        let (tx, durable) = later(Duration::from_secs(60));
        drop(tx);
        assert_eq!(
            durable.wait(),
            Err("the lake writer stopped before it had committed the changes".into())
        );
        let (_tx, durable) = later(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            durable.try_answer(),
            Some(Err(
                "the lake writer did not commit the changes within 1ms".into()
            ))
        );
        assert_eq!(Durable::Done.wait(), Ok(()));
    }

    #[test]
    fn the_newest_answered_item_is_taken_and_the_rest_waits() {
        let mut in_flight = InFlight::default();
        let (first, d) = later(Duration::from_secs(60));
        in_flight.push(d, "pos 100");
        let (second, d) = later(Duration::from_secs(60));
        in_flight.push(d, "pos 200");
        let (third, d) = later(Duration::from_secs(60));
        in_flight.push(d, "pos 300");
        assert_eq!(in_flight.newest_answered(4), Ok(None));
        // The second answered before the first: nothing is safe until the first is.
        second.send(Ok(())).unwrap();
        assert_eq!(in_flight.newest_answered(4), Ok(None));
        first.send(Ok(())).unwrap();
        assert_eq!(in_flight.newest_answered(4), Ok(Some("pos 200")));
        assert!(!in_flight.is_empty());
        third.send(Err("table shop.t stopped".into())).unwrap();
        assert_eq!(
            in_flight.newest_answered(4),
            Err(Unanswered {
                reason: "table shop.t stopped".into(),
                item: "pos 300"
            })
        );
        assert!(in_flight.is_empty());
    }

    #[test]
    fn more_than_keep_outstanding_waits_for_the_oldest() {
        let mut in_flight = InFlight::default();
        let mut senders = Vec::new();
        for pos in [1, 2, 3] {
            let (tx, d) = later(Duration::from_secs(60));
            in_flight.push(d, pos);
            senders.push(tx);
        }
        let answer_first = {
            let tx = senders.remove(0);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                tx.send(Ok(())).unwrap();
            })
        };
        // Three outstanding, two kept: the oldest is waited for; the others are not answered.
        assert_eq!(in_flight.newest_answered(2), Ok(Some(1)));
        answer_first.join().unwrap();
        for tx in &senders {
            tx.send(Ok(())).unwrap();
        }
        assert_eq!(in_flight.wait_all(), Ok(()));
        assert!(in_flight.is_empty());
    }
}
