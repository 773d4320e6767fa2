//! Connections a client cannot hold forever, over real sockets: a connection that sends no
//! byte is closed within the header timeout counted from accept; a body dribbled slower than
//! the body timeout is cut off; beyond the connection cap new connections are closed at once
//! while the ones already open keep being served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use visa_e2e::TestApp;

/// Reads until the server closes the connection (or `within` passes): what it sent, and how long
/// it took. Panics if the connection is still open after `within`.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open for {within:?} ({e})"),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_from_accept() {
    let app = TestApp::spawn_with(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let addr = app.addr;
    let (received, took) = tokio::task::spawn_blocking(move || {
        let mut idle = TcpStream::connect(addr).unwrap();
        read_until_closed(&mut idle, Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(received.is_empty(), "{received}");
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dribbled_slower_than_the_body_timeout_is_cut_off() {
    let app = TestApp::spawn_with(|c| c.body_read_timeout = Duration::from_millis(500)).await;
    let addr = app.addr;
    let (answer, took) = tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(addr).unwrap();
        let head = "POST /v1/api/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n";
        slow.write_all(head.as_bytes()).unwrap();
        // One byte every 200 ms (the whole body would take 40 s), from a thread of its own,
        // until the server has answered or closed.
        let mut writer = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            while writer.write_all(b" ").is_ok() {
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        read_until_closed(&mut slow, Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(
        answer.is_empty() || (answer.starts_with("HTTP/1.1 408") && answer.contains("REQUEST_TIMEOUT")),
        "{answer}"
    );
    assert!(took < Duration::from_secs(4), "the body read was not bounded: {took:?}");
}

/// A request that keeps its connection open, and its answer read.
fn served(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_new_connections_are_refused_and_open_ones_served() {
    let app = TestApp::spawn_with(|c| {
        c.max_connections = Some(3);
        c.header_read_timeout = Duration::from_secs(10);
    })
    .await;
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        // Three connections that have been served and stay open: none may be evicted.
        let mut open: Vec<TcpStream> = (0..3).map(|_| served(addr)).collect();
        let mut over = TcpStream::connect(addr).unwrap();
        let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        let (received, took) = read_until_closed(&mut over, Duration::from_secs(5));
        assert!(!received.contains("200 OK"), "served beyond the cap: {received}");
        assert!(took < Duration::from_secs(1), "refused at once, not after {took:?}");
        // The connections already open are still served.
        let first = &mut open[0];
        first.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
        let (answer, _) = read_until_closed(first, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Once they close, new connections are accepted again.
        drop(open);
        std::thread::sleep(Duration::from_millis(200));
        let mut again = TcpStream::connect(addr).unwrap();
        again.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
        let (answer, _) = read_until_closed(&mut again, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .unwrap();
}

/// At the cap, sockets that never send a byte, and HTTP/2 connections that sent their preface
/// and no request, cannot lock clients out: the oldest of them is closed to make room, however
/// often an attacker reopens them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_and_h2_prefaces_at_the_cap_make_room_for_real_clients() {
    let app = TestApp::spawn_with(|c| {
        c.max_connections = Some(8);
        c.max_connections_per_ip = Some(1_000);
        c.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let mut held = vec![];
        for round in 0..3 {
            // The attacker fills the cap: half silent sockets, half HTTP/2 prefaces.
            for n in 0..8 {
                let mut socket = TcpStream::connect(addr).unwrap();
                if n % 2 == 1 {
                    socket.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
                }
                held.push(socket);
            }
            std::thread::sleep(Duration::from_millis(200));
            let started = Instant::now();
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
            let (answer, _) = read_until_closed(&mut client, Duration::from_secs(5));
            assert!(answer.starts_with("HTTP/1.1 200"), "round {round}: {answer}");
            assert!(started.elapsed() < Duration::from_secs(2), "round {round}: {:?}", started.elapsed());
        }
    })
    .await
    .unwrap();
}

/// One source IP may hold at most its share of connections; the next is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_ip_cannot_take_every_connection() {
    let app = TestApp::spawn_with(|c| {
        c.max_connections = Some(100);
        c.max_connections_per_ip = Some(2);
    })
    .await;
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let _open: Vec<TcpStream> = (0..2).map(|_| served(addr)).collect();
        let mut third = TcpStream::connect(addr).unwrap();
        let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        let (received, took) = read_until_closed(&mut third, Duration::from_secs(5));
        assert!(!received.contains("200 OK") && took < Duration::from_secs(1), "{received} after {took:?}");
    })
    .await
    .unwrap();
}

/// An HTTP/2 (cleartext) connection that opens and then goes silent is closed: pinged, it never
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http2_connection_is_closed() {
    let app = TestApp::spawn_with(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let addr = app.addr;
    let (_, took) = tokio::task::spawn_blocking(move || {
        let mut h2 = TcpStream::connect(addr).unwrap();
        // The client preface and an empty SETTINGS frame, then nothing (no ping is answered).
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
        read_until_closed(&mut h2, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}
