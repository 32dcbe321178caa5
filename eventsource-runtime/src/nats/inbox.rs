//! The messages of a group's open pull request while they are in this process: taken as
//! they arrive, and kept alive at JetStream (`+WPI`, "work in progress") while they wait
//! their turn and while they are handled.
//!
//! Why: JetStream hands a delivered message to another consumer when its `ack_wait` passes
//! without a word. Kept alive, a message is never handed on while this process works on it,
//! however slow its handlers or long its queue; so `ack_wait` can be short, and it bounds
//! how long a consumer that died holds its messages (`max_ack_pending` of them) before the
//! others get them.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Batch;
use async_nats::jetstream::{AckKind, Message};
use async_nats::{Client, Subject};
use futures_util::StreamExt as _;

/// How long one pull request waits for messages; also the longest a shutdown waits for the
/// messages of its open pull requests.
pub(super) const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// What a pull request yields: a message, or the error that ended it.
type Pulled = Result<Message, async_nats::Error>;

/// The shortest interval between two keep-alives of one message.
const MIN_KEEP_ALIVE: Duration = Duration::from_millis(10);

/// An open pull request and the messages taken from it that wait their turn.
pub(super) struct Inbox {
    pull: Batch,
    waiting: VecDeque<Message>,
    /// How the pull request ended, once it did (`None`: it brought all it will; an error
    /// that ended it), handed out after the waiting messages.
    ended: Option<Option<Pulled>>,
}

impl Inbox {
    pub(super) fn new(pull: Batch) -> Self {
        Self {
            pull,
            waiting: VecDeque::new(),
            ended: None,
        }
    }

    /// The next message: a waiting one, else the next to arrive; `None` once the pull
    /// request brought all it will, an error if it failed. Cancel-safe.
    pub(super) async fn next(&mut self) -> Option<Pulled> {
        if let Some(message) = self.waiting.pop_front() {
            return Some(Ok(message));
        }
        if let Some(end) = &mut self.ended {
            // Once handed out, an end reads as the request's last word: nothing more.
            return end.take();
        }
        let next = self.pull.next().await;
        if !matches!(next, Some(Ok(_))) {
            self.ended = Some(None);
        }
        next
    }

    /// Takes what arrived, `Poll::Pending` when nothing did (or the request ended).
    fn poll_arrival(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.ended.is_some() {
            return Poll::Pending;
        }
        match self.pull.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(message))) => self.waiting.push_back(message),
            Poll::Ready(end) => self.ended = Some(end),
            Poll::Pending => return Poll::Pending,
        }
        Poll::Ready(())
    }

    /// Gives back every waiting message and every one the open pull request still brings
    /// in (it ends within [`PULL_EXPIRES`]), each held back
    /// for as long as this request may still be open, so that it goes to the next pull.
    pub(super) async fn give_back(mut self) {
        let held = PULL_EXPIRES;
        for message in self.waiting.drain(..) {
            let _ = message.ack_with(AckKind::Nak(Some(held))).await;
        }
        if self.ended.is_some() {
            return;
        }
        let until = tokio::time::Instant::now() + held + GIVE_BACK_SLACK;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, self.pull.next()).await {
            let _ = message.ack_with(AckKind::Nak(Some(held))).await;
        }
    }
}

/// How long past its expiry a pull request's last messages are waited for.
const GIVE_BACK_SLACK: Duration = Duration::from_millis(500);

/// Keeps messages alive at JetStream: a `+WPI` for each, every third of the group's ack
/// wait, so that none waits a whole ack wait without a word.
pub(super) struct KeepAlive {
    client: Client,
    every: Duration,
}

impl KeepAlive {
    pub(super) fn new(client: Client, ack_wait: Duration) -> Self {
        Self {
            client,
            every: (ack_wait / 3).max(MIN_KEEP_ALIVE),
        }
    }

    /// Runs `work` on the messages `in_hand` while taking what arrives in `inboxes`, and
    /// keeps both alive until `work` is done.
    pub(super) async fn during<F: Future>(
        &self,
        work: F,
        in_hand: &[Option<Subject>],
        inboxes: &mut [&mut Inbox],
    ) -> F::Output {
        let mut work = pin!(work);
        let start = tokio::time::Instant::now() + self.every;
        let mut ticks = tokio::time::interval_at(start, self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                output = &mut work => return output,
                _ = ticks.tick() => {
                    // Collected first: the keep-alives go out while more may arrive.
                    let mut replies: Vec<Subject> = in_hand.iter().flatten().cloned().collect();
                    for inbox in inboxes.iter() {
                        for message in &inbox.waiting {
                            replies.extend(message.reply.clone());
                        }
                    }
                    for reply in replies {
                        self.working(reply).await;
                    }
                }
                () = poll_fn(|cx| arrival(inboxes, cx)) => {}
            }
        }
    }

    /// Tells JetStream the message with this reply subject is still being worked on. A
    /// lost keep-alive costs a redelivery after the ack wait, as a dead consumer does.
    async fn working(&self, reply: Subject) {
        let _ = self.client.publish(reply, AckKind::Progress.into()).await;
    }
}

/// Takes what arrived in any of `inboxes`.
fn arrival(inboxes: &mut [&mut Inbox], cx: &mut std::task::Context<'_>) -> Poll<()> {
    let mut arrived = false;
    for inbox in inboxes.iter_mut() {
        arrived |= inbox.poll_arrival(cx).is_ready();
    }
    if arrived {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

/// The reply subject of `message`: where its acknowledgements and keep-alives go.
pub(super) fn reply(message: &Message) -> Option<Subject> {
    message.reply.clone()
}
