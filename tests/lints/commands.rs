use std::fmt;

use eventsource_runtime::command::Handle;
use eventsource_runtime::command_handler;

use crate::domain::movements::Deposited;
use crate::domain::{Account, Movement, Order, OrderEvent, OrderShipped};

/// The order was shipped already.
#[derive(Debug, thiserror::Error)]
#[error("shipped already")]
pub struct ShippedAlready;

/// Ships an order: the id is a `String` field.
pub struct Ship {
    /// The order.
    pub order_id: String,
}

#[command_handler(aggregate_id = cmd.order_id)]
impl Handle<Ship> for Order {
    type Error = ShippedAlready;
    fn handle(&self, cmd: Ship) -> Result<Vec<OrderEvent>, ShippedAlready> {
        drop(cmd);
        if self.is_shipped() {
            return Err(ShippedAlready);
        }
        Ok(vec![OrderShipped.into()])
    }
}

/// An account number, shown with its branch.
#[derive(Debug, Clone, Copy)]
pub struct AccountNumber(pub u32);

impl fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "acc-{}", self.0)
    }
}

/// Deposits into an account: the id is a `Display` type.
#[derive(Debug, Clone, Copy)]
pub struct Deposit {
    /// The account.
    pub account: AccountNumber,
    /// The amount, in cents.
    pub cents: u64,
}

/// A deposit of nothing.
#[derive(Debug, thiserror::Error)]
#[error("nothing to deposit")]
pub struct NothingToDeposit;

/// A decision function whose command's id is a `Display` type.
///
/// # Errors
/// [`NothingToDeposit`] for zero cents.
#[command_handler(aggregate_id = deposit.account, command_type = "MakeDeposit")]
pub fn deposit(_: &Account, deposit: Deposit) -> Result<Vec<Movement>, NothingToDeposit> {
    let cents = deposit.cents;
    if cents == 0 {
        return Err(NothingToDeposit);
    }
    Ok(vec![Deposited { cents }.into()])
}
