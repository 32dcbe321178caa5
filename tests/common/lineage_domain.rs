//! Two services for the lineage tests: a cart service whose checkout is published, and a
//! fulfilment service whose bus handler prepares a shipment for each checkout (running a
//! command of its own, in its own store).

use std::convert::Infallible;

use eventsource_runtime::bus::{EventHandler, HandlerError, handler_fn};
use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedOut {
    pub items: u32,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Cart", events(CheckedOut))]
pub struct Cart;

impl Apply<CheckedOut> for Cart {
    fn apply(&mut self, _: &CheckedOut) {}
}

pub struct CheckOut {
    pub cart_id: String,
    pub items: u32,
}

impl Command for CheckOut {
    const TYPE: &'static str = "CheckOut";
    fn aggregate_id(&self) -> String {
        self.cart_id.clone()
    }
}

impl Handle<CheckOut> for Cart {
    type Error = Infallible;
    fn handle(&self, cmd: CheckOut) -> Result<Vec<CartEvent>, Infallible> {
        Ok(vec![CheckedOut { items: cmd.items }.into()])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentPrepared {
    pub items: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentPacked;

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Shipment", events(ShipmentPrepared, ShipmentPacked))]
pub struct Shipment;

impl Apply<ShipmentPrepared> for Shipment {
    fn apply(&mut self, _: &ShipmentPrepared) {}
}

impl Apply<ShipmentPacked> for Shipment {
    fn apply(&mut self, _: &ShipmentPacked) {}
}

pub struct PrepareShipment {
    pub cart_id: String,
    pub items: u32,
}

impl Command for PrepareShipment {
    const TYPE: &'static str = "PrepareShipment";
    fn aggregate_id(&self) -> String {
        self.cart_id.clone()
    }
}

/// Two events: both caused by the checkout.
impl Handle<PrepareShipment> for Shipment {
    type Error = Infallible;
    fn handle(&self, cmd: PrepareShipment) -> Result<Vec<ShipmentEvent>, Infallible> {
        Ok(vec![
            ShipmentPrepared { items: cmd.items }.into(),
            ShipmentPacked.into(),
        ])
    }
}

/// The fulfilment service's handler: for each checkout, `PrepareShipment` on `shipments`,
/// with nothing passed by hand (the dispatcher's lineage does it).
pub fn fulfilment(shipments: CommandService<Shipment>) -> impl EventHandler {
    handler_fn("fulfilment", move |event: EventEnvelope| {
        let shipments = shipments.clone();
        async move {
            let Some(checked_out) = event.decode_as::<CheckedOut>() else {
                return Ok(());
            };
            let prepare = PrepareShipment {
                cart_id: event.aggregate_id().to_owned(),
                items: checked_out?.items,
            };
            shipments
                .execute(prepare)
                .await
                .map(drop)
                .map_err(HandlerError::new)
        }
    })
    .only(["CheckedOut"])
}
