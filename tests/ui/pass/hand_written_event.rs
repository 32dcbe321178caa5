//! `event = ..`: the escape hatch for a hand-written event enum.

use eventsource_runtime::event::{DecodeError, Payload};
use eventsource_runtime::{Aggregate, aggregate::{Aggregate, AggregateRoot, Apply}, event::DomainEvent};

#[derive(Debug, Clone, PartialEq)]
pub enum LightEvent {
    SwitchedOn,
    SwitchedOff,
}

impl DomainEvent for LightEvent {
    const EVENT_TYPES: &'static [&'static str] = &["SwitchedOn", "SwitchedOff"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::SwitchedOn => "SwitchedOn",
            Self::SwitchedOff => "SwitchedOff",
        }
    }

    fn to_payload(&self) -> Result<Payload, serde_json::Error> {
        Ok(Payload::from(serde_json::Value::Null))
    }

    fn from_payload(event_type: &str, _: &Payload) -> Result<Self, DecodeError> {
        match event_type {
            "SwitchedOn" => Ok(Self::SwitchedOn),
            "SwitchedOff" => Ok(Self::SwitchedOff),
            other => Err(DecodeError::UnknownEventType {
                event_type: other.to_owned(),
                known: Self::EVENT_TYPES,
            }),
        }
    }
}

#[derive(Default, Aggregate)]
#[aggregate(type = "Light", event = LightEvent)]
pub struct Light {
    on: bool,
}

impl Apply<LightEvent> for Light {
    fn apply(&mut self, event: &LightEvent) {
        self.on = matches!(event, LightEvent::SwitchedOn);
    }
}

fn main() {
    let mut light = AggregateRoot::<Light>::new("hall");
    light.record(LightEvent::SwitchedOn);
    assert!(light.state().on);
    light.record(LightEvent::SwitchedOff);
    assert!(!light.state().on);
    assert_eq!(<Light as Aggregate>::TYPE, "Light");
}
