//! The compile-fail cases' shared domain (`tests/ui/fail/`, run by `tests/ui.rs`): what a
//! case uses without misusing it, so that each case shows only its misuse.
//!
//! What a case misuses stays in the case, and so does what Rust wants local to it: the type
//! of an inherent `impl` (a projection, an aggregate), the command of an
//! `impl Handle<Command> for Account` (whose `impl Command` the macro writes), and the
//! events of an aggregate the case derives (whose `impl EventType` the derive writes).

/// The command handler cases' account: an aggregate with one event, the error its handlers
/// refuse with, and the command of the decision functions.
pub mod account {
    use eventsource_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    /// Account `id` was opened.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Opened {
        pub id: String,
    }

    /// An account, and its event enum `AccountEvent`.
    #[derive(Default, Aggregate)]
    #[aggregate(type = "Account", events(Opened))]
    pub struct Account;

    impl Apply<Opened> for Account {
        fn apply(&mut self, _: &Opened) {}
    }

    /// What an account's handlers refuse with.
    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    pub struct Refused;

    /// Open account `id`: the command of the decision function cases, whose errors stop the
    /// expansion before any `impl Command for Open`. A case of an
    /// `impl Handle<Open> for Account` writes its own `Open`.
    pub struct Open {
        pub id: String,
    }
}

/// The projection cases' event. The projection, `OrderList`, stays in each case: the
/// `#[projection]` impl is inherent.
pub mod orders {
    use eventsource_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    /// An order was placed.
    #[derive(Serialize, Deserialize)]
    pub struct OrderPlaced;

    impl EventType for OrderPlaced {
        const EVENT_TYPE: &'static str = "OrderPlaced";
    }
}
