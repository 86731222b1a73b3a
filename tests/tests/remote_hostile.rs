//! A hostile remote cache: an S3 endpoint (a few lines of HTTP on a loopback port, built
//! here) that announces or sends far more than an entry may hold, trickles bytes, truncates
//! bodies while ignoring `Range`, answers a listing with garbage, or has nothing. A download
//! must stop at the entry limit without holding the body in memory, one deadline and a
//! bounded number of requests must bound the whole operation, a hostile listing is an error
//! (never a panic), and "not there" is not "corrupt".

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use trt_cache::{ErrorKind, Remote, RemoteConfig};

/// How the fake server answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// HEAD announces 10 GiB.
    Announces10GiB,
    /// HEAD announces 100 bytes, GET then announces 10 GiB and sends zeros without end.
    EndlessBody,
    /// HEAD announces 100 bytes, GET sends one byte every 1.5 s.
    Trickle,
    /// HEAD and GET announce 100 bytes; GET sends 10 and closes, whatever `Range` asks.
    Truncates,
    /// Every request is answered with a listing that is not one (broken XML, a negative
    /// size, a date that is not a date).
    GarbageListing,
    /// Every request is answered 404.
    NotFound,
}

/// The server's port and the number of requests it has read.
fn serve(behaviour: Behaviour) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || answer(stream, behaviour, &counter));
        }
    });
    (port, requests)
}

fn answer(stream: TcpStream, behaviour: Behaviour, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            line.clear();
        }
        let head = request.starts_with("HEAD");
        match behaviour {
            Behaviour::NotFound => {
                let body = "<Error><Code>NoSuchKey</Code></Error>";
                let reply = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{}",
                    body.len(),
                    if head { "" } else { body }
                );
                if out.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            Behaviour::GarbageListing => {
                let body = "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>maybe</IsTruncated><Contents><Key>team/\u{0}../x.tar</Key><Size>-1</Size><LastModified>yesterday</LastModified></Contents><Contents><Key>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if out.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            _ => {}
        }
        let announced: u64 = match behaviour {
            Behaviour::Announces10GiB => 10 << 30,
            _ => 100,
        };
        // The endless body's GET announces 10 GiB although HEAD said 100 bytes.
        let length = if !head && matches!(behaviour, Behaviour::EndlessBody) {
            format!("Content-Length: {}", 10u64 << 30)
        } else {
            format!("Content-Length: {announced}")
        };
        let header = format!(
            "HTTP/1.1 200 OK\r\n{length}\r\nLast-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\nETag: \"x\"\r\n\r\n"
        );
        if out.write_all(header.as_bytes()).is_err() {
            return;
        }
        if head {
            continue;
        }
        match behaviour {
            Behaviour::Announces10GiB | Behaviour::EndlessBody => {
                let zeros = vec![0u8; 1 << 16];
                while out.write_all(&zeros).is_ok() {}
                return;
            }
            Behaviour::Truncates | Behaviour::GarbageListing | Behaviour::NotFound => {
                let _ = out.write_all(&[0u8; 10]);
                return;
            }
            Behaviour::Trickle => {
                for _ in 0..announced {
                    if out.write_all(&[0]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1500));
                }
            }
        }
    }
}

fn remote(port: u16, timeout: Duration) -> Remote {
    let config = RemoteConfig::new(format!(
        "s3://engines/team?endpoint=http://127.0.0.1:{port}"
    ))
    .s3_credentials("access", "secret-key-value")
    .with_timeout(timeout)
    .max_entry_bytes(1 << 20);
    Remote::open(config).unwrap()
}

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn an_announced_or_sent_body_above_the_limit_is_refused_without_buffering_it() {
    for behaviour in [Behaviour::Announces10GiB, Behaviour::EndlessBody] {
        let r = remote(serve(behaviour).0, Duration::from_secs(30));
        let start = Instant::now();
        let e = r.fetch(KEY).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("1048576-byte limit"), "{e}");
        assert!(!e.to_string().contains("secret-key-value"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn one_deadline_bounds_a_trickling_download() {
    let r = remote(serve(Behaviour::Trickle).0, Duration::from_secs(2));
    let start = Instant::now();
    let e = r.fetch(KEY).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("time-out"), "{e}");
    // The deadline is 2 s; anything near the 150 s the body would take is a failure.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_server_that_truncates_bodies_and_ignores_range_gets_a_bounded_number_of_requests() {
    let (port, requests) = serve(Behaviour::Truncates);
    let r = remote(port, Duration::from_secs(5));
    let e = r.fetch(KEY).unwrap_err();
    assert_ne!(e.kind(), ErrorKind::Config, "{e}");
    assert!(!e.to_string().contains("secret-key-value"), "{e}");
    // The stat, the read and the client library's bounded retries and resumptions: a handful,
    // never the hundreds an unbounded resume loop sends.
    let n = requests.load(Ordering::SeqCst);
    assert!(n <= 12, "{n} requests for one download");
}

#[test]
fn a_garbage_listing_is_an_error_naming_the_remote_never_a_panic() {
    let r = remote(serve(Behaviour::GarbageListing).0, Duration::from_secs(5));
    let e = r.list().unwrap_err();
    let text = e.to_string();
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains("secret-key-value"), "{text}");
}

#[test]
fn an_entry_the_remote_does_not_have_is_missing_not_corrupt() {
    // `cargo xtask cache verify` reports `Ok(None)` as MISSING; a 404 once read as "ok".
    let r = remote(serve(Behaviour::NotFound).0, Duration::from_secs(5));
    assert!(r.fetch(KEY).unwrap().is_none());
    // A server that is not there is unavailable (UNREACHABLE), never corrupt.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = remote(port, Duration::from_secs(2)).fetch(KEY).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}
