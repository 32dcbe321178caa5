//! A publish's confirmation, and which message a broker's return names.
//!
//! With publisher confirms and `mandatory` publishes, the broker sends `basic.return`
//! before the `basic.ack` of an unroutable message. lapin hands the return to the first
//! confirm it resolves after it, and an ack covering several messages (`multiple`)
//! resolves them in no set order: the return can come with another message's confirm,
//! one of the same ack. So a return is matched to its message by the message id it
//! carries ([`Returns`]), not by the confirm it came with.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lapin::{Confirmation, PublisherConfirm};
use tokio::time::Instant;
use uuid::Uuid;

use super::error::unavailable;
use crate::bus::BusError;

/// What the broker did with a message it confirmed.
pub(super) enum Confirmed {
    /// Acknowledged, and no return came with the confirm.
    Routed,
    /// A return came with the confirm: the message `message_id` (when it carries one) was
    /// not routed to any queue, for this reason.
    Returned {
        message_id: Option<Uuid>,
        reason: String,
    },
}

/// Waits until `deadline` for the broker's confirmation of the message `message_id`.
pub(super) async fn confirmed(
    confirm: PublisherConfirm,
    message_id: Uuid,
    deadline: Instant,
    timeout: Duration,
) -> Result<Confirmed, BusError> {
    match tokio::time::timeout_at(deadline, confirm).await {
        Err(_) => Err(BusError::Unconfirmed {
            message_id,
            waited: timeout,
        }),
        Ok(Err(error)) => Err(unavailable(error)),
        Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(Confirmed::Routed),
        Ok(Ok(Confirmation::Ack(Some(returned)))) => Ok(Confirmed::Returned {
            message_id: returned
                .properties
                .message_id()
                .as_ref()
                .and_then(|id| Uuid::parse_str(id.as_str()).ok()),
            reason: format!(
                "returned by the broker: {} {}",
                returned.reply_code, returned.reply_text
            ),
        }),
        Ok(Ok(Confirmation::Nack(_))) => Err(BusError::Rejected {
            message_id,
            reason: "nacked by the broker".to_owned(),
        }),
    }
}

/// How many returns of other publishes a bus keeps for their owners: a publish that
/// already finished never takes its own, and the oldest are dropped past this.
const KEPT_RETURNS: usize = 256;

/// Returns that came with the confirm of a message other than the one they name, kept
/// until the publish of the named message [takes](Self::take) its own.
///
/// Within one publish call, every confirmation is in before any message is called routed,
/// so the return of any of its messages has been seen. Across publish calls sharing the
/// channel, the return is kept when the call holding the other confirm sorts it; the same
/// ack frame resolves both confirms, but a call that takes its outcomes before the other
/// sorts would call its message routed (a window of a task switch, not closed here).
#[derive(Default)]
pub(super) struct Returns {
    kept: Mutex<VecDeque<(Uuid, String)>>,
}

impl Returns {
    /// The confirmation of the message `own`: a return naming another message is kept
    /// for that one, and the confirm is `own`'s acknowledgement.
    pub(super) fn sort(
        &self,
        own: Uuid,
        confirmation: Result<Confirmed, BusError>,
    ) -> Result<Confirmed, BusError> {
        match confirmation {
            Ok(Confirmed::Returned {
                message_id: Some(named),
                reason,
            }) if named != own => {
                let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
                if kept.len() == KEPT_RETURNS {
                    kept.pop_front();
                }
                kept.push_back((named, reason));
                Ok(Confirmed::Routed)
            }
            other => other,
        }
    }

    /// The return kept for the message `id`, if one came with another message's confirm.
    pub(super) fn take(&self, id: Uuid) -> Option<String> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let index = kept.iter().position(|(named, _)| *named == id)?;
        kept.remove(index).map(|(_, reason)| reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn returned(id: Uuid) -> Result<Confirmed, BusError> {
        Ok(Confirmed::Returned {
            message_id: Some(id),
            reason: "returned by the broker: 312 NO_ROUTE".to_owned(),
        })
    }

    /// Three messages of one ack, the middle one unroutable, its return handed to the
    /// first message's confirm: the first is routed, the middle one is the returned one.
    #[test]
    fn a_return_on_another_confirm_goes_to_the_message_it_names() {
        let returns = Returns::default();
        let [first, middle, last] = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        let sorted = returns.sort(first, returned(middle));
        assert!(
            matches!(sorted, Ok(Confirmed::Routed)),
            "the first was routed"
        );
        assert!(matches!(
            returns.sort(middle, Ok(Confirmed::Routed)),
            Ok(Confirmed::Routed)
        ));
        assert!(matches!(
            returns.sort(last, Ok(Confirmed::Routed)),
            Ok(Confirmed::Routed)
        ));
        assert_eq!(returns.take(first), None);
        assert_eq!(
            returns.take(middle).as_deref(),
            Some("returned by the broker: 312 NO_ROUTE")
        );
        assert_eq!(returns.take(middle), None, "taken once");
        assert_eq!(returns.take(last), None);
    }

    #[test]
    fn a_return_naming_its_own_message_or_none_stays_with_its_confirm() {
        let returns = Returns::default();
        let own = Uuid::now_v7();
        assert!(matches!(
            returns.sort(own, returned(own)),
            Ok(Confirmed::Returned { .. })
        ));
        let anonymous = Ok(Confirmed::Returned {
            message_id: None,
            reason: String::new(),
        });
        assert!(matches!(
            returns.sort(own, anonymous),
            Ok(Confirmed::Returned { .. })
        ));
        assert_eq!(returns.take(own), None);
    }

    #[test]
    fn returns_kept_for_others_are_bounded() {
        let returns = Returns::default();
        let own = Uuid::now_v7();
        let oldest = Uuid::now_v7();
        let _ = returns.sort(own, returned(oldest));
        for _ in 0..KEPT_RETURNS {
            let _ = returns.sort(own, returned(Uuid::now_v7()));
        }
        assert_eq!(returns.take(oldest), None, "dropped past the bound");
    }
}
