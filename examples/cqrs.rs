//! CQRS read and write paths, each with its own visibility, as an application:
//! the write path is commands through a `CommandService` (`command.*` spans,
//! `cqrs.side=write`), the read path is queries through a small query bus over the
//! projection's read model (`query.*` spans, `cqrs.side=read`), and the projection between
//! them records `cqrs.projection.lag`. A query nobody handles is an ERROR span and a typed
//! error. At exit the contract's metrics are printed as a summary.
//!
//! `cargo run --example cqrs` prints each trace as a tree on stderr and the metrics summary
//! on stdout; with `OTEL_EXPORTER_OTLP_ENDPOINT` set, traces and metrics go to a collector
//! instead (and no summary is printed).

#[path = "domain/order.rs"]
mod domain;
#[path = "support/exit.rs"]
mod support;

use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use domain::{OrderReadModel, OrderStatus, OrderView, ShipOrder, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::SharedProjection;
use eventsource_runtime::query;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

// ---- The read path: a query bus over the read model. -------------------------------------

/// What the read side answers.
#[derive(Debug, Clone)]
pub enum Query {
    /// One order.
    OrderById(String),
    /// The orders placed and not shipped or cancelled.
    OpenOrders,
    /// Revenue per customer: nobody wrote its handler yet.
    RevenueByCustomer(String),
}

impl Query {
    /// The query type: the span `query.{type}` and the metrics' `query.type`.
    fn query_type(&self) -> &'static str {
        match self {
            Self::OrderById(_) => "OrderById",
            Self::OpenOrders => "OpenOrders",
            Self::RevenueByCustomer(_) => "RevenueByCustomer",
        }
    }
}

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No handler is registered for this query type.
    #[error("no handler for the query {0}")]
    NoHandler(&'static str),
    /// The order does not exist (yet).
    #[error("order {0} not found")]
    NotFound(String),
}

/// Answers queries from the read model, each inside its `query.{type}` span.
pub struct QueryBus {
    orders: SharedProjection<OrderReadModel>,
}

impl QueryBus {
    async fn order(&self, order_id: &str) -> Result<OrderView, QueryError> {
        query::run("OrderById", async {
            let orders = self.orders.lock().await;
            let found = orders.orders.get(order_id).cloned();
            found.ok_or_else(|| QueryError::NotFound(order_id.to_owned()))
        })
        .await
    }

    async fn open_orders(&self) -> Result<Vec<String>, QueryError> {
        query::run_collection("OpenOrders", async {
            let orders = self.orders.lock().await;
            let open = orders.orders.iter();
            let open = open.filter(|(_, view)| view.status == OrderStatus::Placed);
            Ok(open.map(|(id, _)| id.clone()).collect())
        })
        .await
    }

    /// A query type with no handler: the span ends with ERROR, the caller gets a typed error.
    async fn unhandled(&self, query: &Query) -> Result<(), QueryError> {
        let query_type = query.query_type();
        query::run(query_type, async { Err(QueryError::NoHandler(query_type)) }).await
    }
}

// ---- The metrics summary at exit. --------------------------------------------------------

/// A metric exporter that keeps the last export and prints it when the provider shuts down.
#[derive(Debug, Default)]
struct MetricsSummary {
    last: Mutex<String>,
}

impl PushMetricExporter for MetricsSummary {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut lines = String::new();
        for metric in metrics.scope_metrics().flat_map(|scope| scope.metrics()) {
            let name = metric.name();
            match metric.data() {
                AggregatedMetrics::U64(data) => describe(&mut lines, name, data),
                AggregatedMetrics::F64(data) => describe(&mut lines, name, data),
                AggregatedMetrics::I64(data) => describe(&mut lines, name, data),
            }
        }
        let mut lines: Vec<&str> = lines.lines().collect();
        lines.sort_unstable();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = lines.join("\n");
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        let summary = self.last.lock().unwrap_or_else(|e| e.into_inner());
        println!("\nmetrics at exit:\n{summary}");
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// One line per data point: counters as their value, histograms as count and sum.
fn describe<T: Copy + std::fmt::Display>(out: &mut String, name: &str, data: &MetricData<T>) {
    let labels = |attributes: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
        let mut pairs: Vec<String> = attributes
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        pairs.sort();
        pairs.join(", ")
    };
    match data {
        MetricData::Sum(sum) => {
            for point in sum.data_points() {
                let labels = labels(&mut point.attributes());
                let _ = writeln!(out, "  {name}{{{labels}}} = {}", point.value());
            }
        }
        MetricData::Histogram(histogram) => {
            for point in histogram.data_points() {
                let labels = labels(&mut point.attributes());
                let (count, sum) = (point.count(), point.sum());
                let _ = writeln!(out, "  {name}{{{labels}}} count={count} sum={sum}");
            }
        }
        _ => {}
    }
}

// ---- The application. --------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    // Without a collector, the metrics go to the summary printed at exit (installed before
    // the first command, as any meter provider must be).
    let meters = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")
        .is_none()
        .then(|| {
            let reader = PeriodicReader::builder(MetricsSummary::default()).build();
            let provider = SdkMeterProvider::builder().with_reader(reader).build();
            opentelemetry::global::set_meter_provider(provider.clone());
            provider
        });
    let telemetry = eventsource_runtime::telemetry::init();
    let outcome = run().await;
    // Exports the traces (an error printed as one line), then prints the metrics summary.
    let code = support::finish(telemetry, outcome);
    if let Some(meters) = meters
        && let Err(error) = meters.shutdown()
    {
        eprintln!("error: {}", support::chain(&error));
        return ExitCode::FAILURE;
    }
    code
}

async fn run() -> Result<(), Box<dyn Error>> {
    // The write path.
    let orders = CommandService::<domain::Order>::new(InMemoryEventStore::new());
    let read_model = orders.register(OrderReadModel::default());
    for (order_id, customer) in [("order-1", "ada"), ("order-2", "grace")] {
        orders.execute(sample_order(order_id, customer)).await?;
    }
    let ship = ShipOrder {
        order_id: "order-1".into(),
        carrier: "dhl".into(),
    };
    orders.execute(ship).await?;
    println!("write path: 2 orders placed, 1 shipped");

    // The read path.
    let queries = QueryBus { orders: read_model };
    let order = queries.order("order-1").await?;
    println!(
        "read path: order-1 is {:?} ({} cents)",
        order.status, order.total_cents
    );
    println!("read path: open orders {:?}", queries.open_orders().await?);
    if let Err(error) = queries.order("order-9").await {
        println!("read path: {error}");
    }
    match queries
        .unhandled(&Query::RevenueByCustomer("ada".into()))
        .await
    {
        Err(QueryError::NoHandler(query_type)) => {
            println!("read path: no handler for {query_type} (an ERROR span, a typed error)");
        }
        other => println!("read path: unexpected {other:?}"),
    }
    Ok(())
}
