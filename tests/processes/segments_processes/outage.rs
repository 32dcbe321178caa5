//! The database going away under the workers, as a restart looks to them: every connection
//! cut and new ones refused for longer than the claim timeout, then the database back. The
//! workers reach PostgreSQL through a proxy in the test (the server is shared with the other
//! tests, so it is not restarted itself); the test polls the database directly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::{Scenario, Worker, one_at_a_time, open};

/// A TCP proxy to the database that can be cut (connections dropped, the port closed) and
/// restored on the same port.
struct Proxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    connections: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let mut proxy = Self {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream,
            connections: None,
        };
        proxy.open().await;
        proxy
    }

    /// Listens (on the same port as before, once there is one) and forwards each connection.
    async fn open(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.listen).unwrap();
        let listener = socket.listen(64).unwrap();
        self.listen = listener.local_addr().unwrap();
        let upstream = self.upstream;
        // The accept loop owns every connection's task: aborting it drops them all.
        self.connections = Some(tokio::spawn(async move {
            let mut forwarding = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                forwarding.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Every connection dropped, the port closed: connecting is refused.
    async fn cut(&mut self) {
        if let Some(connections) = self.connections.take() {
            connections.abort();
            let _ = connections.await;
        }
    }

    /// `url` (a `postgres://` URL) through the proxy.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"));
        format!(
            "{scheme}://{}{}/{path}",
            user.unwrap_or_default(),
            self.listen
        )
    }
}

/// The host and port of a `postgres://` URL (5432 by default).
async fn database_address(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split(['/', '?']).next().unwrap();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    tokio::net::lookup_host(host).await.unwrap().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_gone_and_back_leaves_no_segment_unowned_and_loses_nothing() {
    let _one = one_at_a_time().await;
    let Some((db, url)) = open("the_database_gone_and_back").await else {
        return;
    };
    let args = [
        "--segments",
        "6",
        "--claim-timeout-ms",
        "2000",
        "--rebalance-ms",
        "200",
        "--handler-delay-ms",
        "40",
    ];
    let mut proxy = Proxy::start(database_address(&url).await).await;
    let mut scenario = Scenario::new(&db, &url, &args).await;
    scenario.url = proxy.url(&url);
    let mut a = Worker::start(&scenario, "w-a", &[]);
    let mut b = Worker::start(&scenario, "w-b", &[]);
    scenario.wait_for_both_to_work(&mut a, &mut b).await;

    // Gone for longer than the claim timeout: every claim expires meanwhile.
    proxy.cut().await;
    let expired = async |s: &Scenario| s.owners().await.iter().all(Option::is_none);
    scenario
        .wait_for(
            "every claim expired while the database is away",
            scenario.claim_timeout() + Duration::from_secs(10),
            &mut [&mut a, &mut b],
            expired,
        )
        .await;
    let during = scenario.applied().await;
    assert!(during < super::EVENTS, "the database went away mid-stream");
    proxy.open().await;
    let back = Instant::now();

    // Back: the workers claim every segment again within the timeout and a rebalance or
    // two (with room for a loaded machine's slow debug workers), and go on.
    let bound = scenario.claim_timeout() + Duration::from_secs(10);
    let owned = async |s: &Scenario| s.owners().await.iter().all(Option::is_some);
    let took = scenario
        .wait_for(
            "every segment owned again",
            bound,
            &mut [&mut a, &mut b],
            owned,
        )
        .await;
    eprintln!("every segment owned {took:?} after the database came back (timeout 2 s)");
    let all = async |s: &Scenario| s.applied().await == super::EVENTS;
    scenario
        .wait_for(
            "every event applied",
            Duration::from_secs(60),
            &mut [&mut a, &mut b],
            all,
        )
        .await;
    assert!(
        scenario.applied().await > during,
        "work went on after {:?}",
        back.elapsed()
    );
    // The workers took the outage for what it was: their claims lapsed while the database
    // did not answer (lost), not taken over while they stalled (fenced).
    for worker in [&mut a, &mut b] {
        let lost = worker.said("did not answer its renewals");
        assert!(
            lost >= 1,
            "a worker says its claims were lost{}",
            worker.log()
        );
        let stalled = worker.said("taken over while this worker stalled");
        assert_eq!(
            stalled,
            0,
            "a worker took the outage for a stall{}",
            worker.log()
        );
    }
    scenario.assert_model_exact().await;
    a.terminate(Duration::from_secs(10));
    b.terminate(Duration::from_secs(10));
    scenario.pool.close().await;
    db.cleanup().await;
}
