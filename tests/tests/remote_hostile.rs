//! A hostile remote cache: an S3 endpoint (a few lines of HTTP on a loopback port, built
//! here) that announces or sends far more than an entry may hold, or trickles bytes. A
//! download must stop at the entry limit without holding the body in memory, and one deadline
//! must bound the whole operation.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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
}

fn serve(behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream, behaviour));
        }
    });
    port
}

fn answer(stream: TcpStream, behaviour: Behaviour) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            line.clear();
        }
        let head = request.starts_with("HEAD");
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
        let r = remote(serve(behaviour), Duration::from_secs(30));
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
    let r = remote(serve(Behaviour::Trickle), Duration::from_secs(2));
    let start = Instant::now();
    let e = r.fetch(KEY).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("time-out"), "{e}");
    // The deadline is 2 s; anything near the 150 s the body would take is a failure.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
