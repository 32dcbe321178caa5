//! Every shape of function `#[traced]` accepts.

use std::fmt::Display;
use std::future::Future;
use std::io;

use eventsource_runtime::prelude::*;

pub mod names {
    pub const PLACE: &str = "orders.place";
    pub const CUSTOMER_ID: &str = "customer.id";
}

/// Named `...Result` but not a `Result`: accepted, nothing to record.
#[derive(Debug)]
pub struct SearchResult(pub Vec<u32>);

pub struct Service<T> {
    items: Vec<T>,
    tracing: bool,
}

impl<T: Clone + Send + Sync + std::fmt::Debug> Service<T> {
    #[traced(name = names::PLACE, fields({ names::CUSTOMER_ID } = customer_id))]
    pub fn place(&mut self, customer_id: &str, item: T) -> &mut T {
        let _ = customer_id;
        self.items.push(item);
        self.items.last_mut().expect("just pushed")
    }

    #[traced(enabled = self.tracing, ret)]
    pub fn first(&self) -> Option<&T> {
        self.items.first()
    }

    #[traced(fields(count = self.items.len()))]
    pub fn into_items(self) -> Vec<T> {
        self.items
    }

    #[traced]
    pub fn boxed(self: Box<Self>) -> usize {
        self.items.len()
    }

    #[traced(kind = consumer, fields(%label, ?extra))]
    pub async fn drain<'a>(&'a mut self, label: impl Display, extra: Option<u8>) -> Vec<T>
    where
        T: 'a,
    {
        let _ = (label.to_string(), extra);
        std::mem::take(&mut self.items)
    }

    #[traced]
    pub fn new_default() -> Self {
        Self {
            items: Vec::new(),
            tracing: true,
        }
    }
}

trait Store {
    async fn load(&self, id: u64) -> Result<Vec<u8>, io::Error>;
    fn search(&self) -> SearchResult;
    fn provided(&self) -> u8 {
        1
    }
}

pub struct Memory;

impl Store for Memory {
    #[traced(kind = client, fields(id))]
    async fn load(&self, id: u64) -> Result<Vec<u8>, io::Error> {
        let n: u8 = "7".parse().map_err(|_| io::Error::other("bad"))?;
        if id == 0 {
            return Err(io::Error::other("no such id"));
        }
        Ok(vec![n])
    }

    #[traced]
    fn search(&self) -> SearchResult {
        SearchResult(vec![1])
    }

    #[traced(attributes("store" = "memory"))]
    fn provided(&self) -> u8 {
        2
    }
}

#[traced]
pub fn io_result(path: &str) -> io::Result<usize> {
    let n: usize = path.len();
    if n == 0 {
        Err(io::Error::other("empty"))?;
    }
    Ok(n)
}

#[traced]
pub fn destructured((a, b): (u8, u8), mut c: u8) -> u8 {
    c += 1;
    a + b + c
}

#[traced]
pub fn iter(up_to: u32) -> impl Iterator<Item = u32> + Clone {
    0..up_to
}

#[traced]
pub fn nested_opaque() -> Result<impl Display, String> {
    let n: u32 = "1".parse().map_err(|_| "nope".to_owned())?;
    Ok(n)
}

#[traced]
pub async fn async_opaque() -> impl Display {
    3
}

#[traced]
pub fn no_return(_unused: u8) {}

/// An async traced function's future stays `Send` (and `'static` when its inputs are).
fn require_send<F: Future + Send + 'static>(f: F) -> F {
    f
}

#[traced(fields(id))]
pub async fn send_me(id: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    Ok(id)
}

#[doc = "Keeps doc attributes"]
#[must_use]
#[traced]
pub fn must_use_kept() -> u8 {
    1
}

fn main() {
    let mut service = Service {
        items: vec![1_u8],
        tracing: true,
    };
    *service.place("c-1", 2) += 1;
    let _ = service.first();
    let _ = require_send(send_me(1));
    let _ = Box::new(Service::<u8>::new_default()).boxed();
    let _ = service.into_items();
    let _ = (
        Memory.search(),
        Memory.provided(),
        io_result("x"),
        destructured((1, 2), 3),
    );
    let _ = (
        iter(3).count(),
        nested_opaque(),
        no_return(1),
        must_use_kept(),
    );
    let _ = (
        async_opaque(),
        Memory.load(1),
        Service::<u8>::new_default().tracing,
    );
}
