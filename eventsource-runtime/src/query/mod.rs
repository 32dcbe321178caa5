//! Queries: the read side, timed and traced as the contract's `query.{QueryType}` span and
//! `cqrs.query.*` metrics.
//!
//! A query is any async read (of a projection's model, a read store, ...). Run it through
//! [`run`], or [`run_collection`] when it returns a collection, whose size then lands on
//! the span (`eventsource.query.result_count`) and in `cqrs.query.result_size`.
//!
//! ```
//! use eventsource_runtime::query;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let orders = vec!["order-1", "order-2"];
//! let open: Vec<&str> = query::run_collection("OpenOrders", async {
//!     Ok::<_, std::io::Error>(orders.clone())
//! })
//! .await
//! .unwrap();
//! assert_eq!(open.len(), 2);
//!
//! let total = query::run("OrderTotal", async { Ok::<_, std::io::Error>(3400_u64) })
//!     .await
//!     .unwrap();
//! assert_eq!(total, 3400);
//! # });
//! ```

mod instrument;

use std::fmt::Display;
use std::future::Future;

/// Runs `query` inside the span `query.{query_type}` (INTERNAL, child of the current span,
/// `cqrs.side` = `read`) and records `cqrs.query.duration` and `cqrs.query.total`. An `Err`
/// ends the span with status ERROR and one `exception` event.
///
/// # Errors
/// The query's own error, unchanged.
pub async fn run<T, E, Fut>(query_type: &'static str, query: Fut) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    instrument::run(query_type, query, |_| None).await
}

/// As [`run`], for a query that returns a collection: its size is recorded as the span's
/// `eventsource.query.result_count` and in `cqrs.query.result_size`.
///
/// # Errors
/// The query's own error, unchanged.
pub async fn run_collection<C, E, Fut>(query_type: &'static str, query: Fut) -> Result<C, E>
where
    Fut: Future<Output = Result<C, E>>,
    E: Display,
    C: Collection,
{
    instrument::run(query_type, query, |items| Some(items.item_count())).await
}

/// What [`run_collection`] returns: a collection whose size is recorded.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a collection whose size `query::run_collection` can record",
    note = "use `query::run` for a single value, or implement `Collection` for your type"
)]
pub trait Collection {
    /// How many items the result holds.
    fn item_count(&self) -> usize;
}

macro_rules! collections {
    ($($ty:ty => [$($generics:tt)*]),* $(,)?) => {$(
        impl<$($generics)*> Collection for $ty {
            #[inline]
            fn item_count(&self) -> usize {
                self.len()
            }
        }
    )*};
}

collections!(
    Vec<T> => [T],
    [T] => [T],
    Box<[T]> => [T],
    std::collections::VecDeque<T> => [T],
    std::collections::HashMap<K, V, S> => [K, V, S],
    std::collections::BTreeMap<K, V> => [K, V],
    std::collections::HashSet<T, S> => [T, S],
    std::collections::BTreeSet<T> => [T],
);

impl<C: Collection + ?Sized> Collection for &C {
    #[inline]
    fn item_count(&self) -> usize {
        (**self).item_count()
    }
}
