//! Which worker waits in `NOTIF_RECV`: exactly one at a time.
//!
//! The kernel wakes every thread blocked in `NOTIF_RECV` on a listener for each notification
//! (its wait is not exclusive), and all but one go back to sleep. With eight workers waiting, that
//! herd cost a call that stays local three times the round trip of a supervisor with one thread
//! (+42 µs against +10 µs for `openat`+`close`, on a VM where a context switch is dear). So the
//! workers take turns: the worker holding the turn is the only one in `NOTIF_RECV`; it keeps the
//! turn while it decides a call on its own (a path the policy keeps local: no other thread is
//! woken at all), and passes it on, waking exactly one waiting worker, before anything that can
//! wait on the target or on a socket. Calls therefore still run side by side as before whenever
//! one of them waits.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The turn all workers of one listener share.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    taken: Mutex<bool>,
    free: Condvar,
}

impl Turn {
    fn taken(&self) -> MutexGuard<'_, bool> {
        self.taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One worker's side of the turn.
#[derive(Debug)]
pub(crate) struct TurnHolder {
    turn: Arc<Turn>,
    held: bool,
}

impl TurnHolder {
    pub(crate) fn new(turn: Arc<Turn>) -> Self {
        Self { turn, held: false }
    }

    /// Waits until no other worker holds the turn, then holds it (at once if this one does).
    pub(crate) fn take(&mut self) {
        if self.held {
            return;
        }
        let mut taken = self.turn.taken();
        while *taken {
            taken = self
                .turn
                .free
                .wait(taken)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *taken = true;
        self.held = true;
    }

    /// Gives the turn to one waiting worker, if this one holds it.
    pub(crate) fn pass(&mut self) {
        if !self.held {
            return;
        }
        *self.turn.taken() = false;
        self.held = false;
        self.turn.free.notify_one();
    }
}

impl Drop for TurnHolder {
    fn drop(&mut self) {
        self.pass();
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::mpsc, thread, time::Duration};

    use super::*;

    #[test]
    fn one_holder_at_a_time_and_passing_wakes_a_waiter() {
        let turn = Arc::new(Turn::default());
        let mut first = TurnHolder::new(Arc::clone(&turn));
        first.take();
        first.take(); // held already: no wait
        let (sender, receiver) = mpsc::channel();
        let mut second = TurnHolder::new(Arc::clone(&turn));
        let waiter = thread::spawn(move || {
            second.take();
            sender.send(()).unwrap();
            second
        });
        assert!(
            receiver.recv_timeout(Duration::from_millis(200)).is_err(),
            "the second worker took the turn while the first held it"
        );
        first.pass();
        first.pass(); // not held any more: nothing happens
        receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("passing the turn did not wake the waiting worker");
        let second = waiter.join().unwrap();
        // Dropping a holder gives its turn back.
        drop(second);
        first.take();
    }
}
