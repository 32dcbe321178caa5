//! A generic aggregate struct: the impl carries the struct's generics and bounds.

use std::marker::PhantomData;

use eventsource_runtime::{Aggregate, aggregate::{Aggregate, AggregateRoot, Apply}};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incremented;

#[derive(Aggregate)]
#[aggregate(type = "Counter", events(Incremented))]
pub struct Counter<T>
where
    T: Send + Sync + 'static,
{
    count: u32,
    unit: PhantomData<fn() -> T>,
}

impl<T: Send + Sync + 'static> Default for Counter<T> {
    fn default() -> Self {
        Self {
            count: 0,
            unit: PhantomData,
        }
    }
}

impl<T: Send + Sync + 'static> Apply<Incremented> for Counter<T> {
    fn apply(&mut self, _: &Incremented) {
        self.count += 1;
    }
}

struct Clicks;

fn main() {
    let mut counter = AggregateRoot::<Counter<Clicks>>::new("c-1");
    counter.record(Incremented);
    counter.record(CounterEvent::Incremented(Incremented));
    assert_eq!(counter.state().count, 2);
    assert_eq!(<Counter<Clicks> as Aggregate>::TYPE, "Counter");
}
