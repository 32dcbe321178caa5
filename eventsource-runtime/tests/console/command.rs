//! `eventsource console` as an operator starts it: loopback only unless told, a bad token
//! refused before anything listens, the page served with actions on and no secret in it,
//! and causation trees across another service's store (`--also-store`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};

use eventsource_runtime::sqlite::SqliteEventStore;

use crate::{TOKEN, invoice_the_shipment, seeded};

fn eventsource(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args(args)
        .env_remove("EVENTSOURCE_ADMIN_TOKEN")
        .env_remove("EVENTSOURCE_BROKER")
        .output()
        .expect("the eventsource binary runs")
}

/// The body of `GET path` from the server at `address`.
fn get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Starts `eventsource` with `args` (a `console` command listening on port 0) and the admin
/// token `token`, and gives the process, its address and the line it printed first.
fn serve(args: &[&str], token: Option<&str>) -> (std::process::Child, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventsource"));
    command
        .args(args)
        .env_remove("EVENTSOURCE_ADMIN_TOKEN")
        .env_remove("EVENTSOURCE_BROKER")
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("EVENTSOURCE_ADMIN_TOKEN", token);
    }
    let mut server = command.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let address = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    (server, address, first)
}

#[tokio::test]
async fn the_tree_takes_in_the_stores_also_store_names() {
    let seeded = seeded("command-also").await;
    // Billing's own store, in the same folder, invoiced the shipment of `req-1`.
    let billing_file = seeded.file().with_file_name("billing.db");
    let billing = SqliteEventStore::connect(billing_file.to_str().unwrap())
        .await
        .unwrap();
    billing.migrate().await.unwrap();
    invoice_the_shipment(&seeded, &billing).await;
    let target = format!("sqlite:{}", seeded.file().display());
    let other = format!("sqlite:{}", billing_file.display());

    let (mut server, address, _) = serve(
        &[
            "--store",
            &target,
            "console",
            "--listen",
            "127.0.0.1:0",
            "--also-store",
            &other,
        ],
        None,
    );
    let tree = get(&address, "/api/causation?correlation=req-1");
    let _ = server.kill();
    let _ = server.wait();
    assert!(tree.starts_with("HTTP/1.1 200"), "{tree}");
    assert!(tree.contains("\"events\":4"), "{tree}");
    assert!(tree.contains("InvoiceIssued"), "{tree}");
}

#[tokio::test]
async fn the_command_listens_on_loopback_and_hides_its_token() {
    let seeded = seeded("command").await;
    let target = format!("sqlite:{}", seeded.file().display());
    let store = ["--store", target.as_str(), "console"];

    let remote = eventsource(&[&store[..], &["--listen", "0.0.0.0:0"]].concat());
    assert_eq!(remote.status.code(), Some(2));
    let said = String::from_utf8_lossy(&remote.stderr);
    assert!(
        said.contains("not a loopback address") && said.contains("--allow-remote"),
        "{said}"
    );
    // Reachable from elsewhere, its reads need a token and its names are given.
    let open = eventsource(&[&store[..], &["--listen", "0.0.0.0:0", "--allow-remote"]].concat());
    assert_eq!(open.status.code(), Some(2));
    let said = String::from_utf8_lossy(&open.stderr);
    assert!(
        said.contains("--read-token") && said.contains("--host"),
        "{said}"
    );
    let short = eventsource(
        &[
            &store[..],
            &["--listen", "127.0.0.1:0", "--admin-token", "abc"],
        ]
        .concat(),
    );
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("too short"));

    let (mut server, address, first) = serve(
        &[&store[..], &["--listen", "127.0.0.1:0"]].concat(),
        Some(TOKEN),
    );
    assert!(first.contains("actions need the admin token"), "{first}");
    let config = get(&address, "/api/config");
    let page = get(&address, "/");
    let _ = server.kill();
    let _ = server.wait();
    assert!(config.starts_with("HTTP/1.1 200"), "{config}");
    assert!(config.contains("\"actions\":true"), "{config}");
    for answer in [&first, &config, &page] {
        assert!(!answer.contains(TOKEN), "the token is shown: {answer}");
    }

    // With a read token and a name: reads need the token, and the name is answered.
    let (mut server, address, _) = serve(
        &[
            &store[..],
            &[
                "--listen",
                "0.0.0.0:0",
                "--allow-remote",
                "--host",
                "console.internal",
                "--read-token",
                "reader-token-5c1e",
            ],
        ]
        .concat(),
        None,
    );
    let port = address.rsplit_once(':').unwrap().1;
    let address = format!("127.0.0.1:{port}");
    let refused = get(&address, "/api/config");
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /api/config HTTP/1.1\r\nhost: console.internal:{port}\r\n\
         authorization: Bearer reader-token-5c1e\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut read = String::new();
    stream.read_to_string(&mut read).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
}
