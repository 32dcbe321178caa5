//! A TCP forwarder, for a broker a namespace cannot reach as it is: RabbitMQ's `guest` logs
//! in from loopback only, so the members in a namespace reach the CI's broker through this
//! forwarder in the test, which the broker sees on loopback; Kafka tells its clients to
//! come back to `127.0.0.1`, so a member in a namespace forwards its own loopback to the
//! test's forwarder too (`child::consumer::LOOPBACK`). Each connection is forwarded
//! byte for byte and ends when either side ends it or fails: a member cut off by a black hole
//! stays open here until the broker gives up on it (its heartbeat), as it would without
//! the forwarder; a reset reaching the forwarder ends the broker's side at once, as a reset
//! reaching the broker would.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Forwards the connections made to a port to an upstream address, until dropped. It runs
/// on a thread of its own: the test's waits (a child's stop, polled) block its runtime's
/// thread, and a member's goodbye to the broker must not wait on them.
pub struct Forwarder {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Listens at `listen` and forwards each connection to `upstream`.
    pub fn start(listen: SocketAddr, upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind(listen)
            .unwrap_or_else(|error| panic!("the forwarder listens on {listen}: {error}"));
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                // Dropped at the stop: every forwarded connection ends with it.
                let mut connections = JoinSet::new();
                let accepting = async {
                    while let Ok((mut member, _)) = listener.accept().await {
                        connections.spawn(async move {
                            let Ok(mut broker) = TcpStream::connect(upstream).await else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut member, &mut broker).await;
                        });
                        while connections.try_join_next().is_some() {}
                    }
                };
                tokio::select! {
                    () = accepting => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
