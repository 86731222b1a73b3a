//! Targets for the engine cache and its remote: entry archives, a remote that answers
//! anything, the prune arguments and secrets in remote URLs. Each target checks a property,
//! not only the absence of panics: a decoded archive is verified, a bad prune argument never
//! selects everything, no secret of a URL appears in a message.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use trt_cache::{ENGINE, Entry, MANIFEST, Remote, RemoteConfig};

use crate::campaign::{Campaign, extreme, mutate_bytes, mutate_text};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn seed_entry(c: &mut Campaign) -> Entry {
    let engine: Vec<u8> = (0..c.below(4096)).map(|i| (i * 7) as u8).collect();
    Entry::new(
        KEY,
        [
            (ENGINE.to_string(), engine),
            (MANIFEST.to_string(), br#"{"name":"m"}"#.to_vec()),
        ],
    )
    .unwrap()
}

#[test]
fn fuzz_cache_archives_and_remote_answers() {
    Campaign::new("archive").run(
        |c| {
            let archive = seed_entry(c).to_archive();
            mutate_bytes(c, archive)
        },
        |bytes| {
            if let Ok(entry) = Entry::from_archive(KEY, bytes) {
                // Accepted means verified: the index lists these files with these hashes.
                let again = Entry::from_archive(KEY, &entry.to_archive()).unwrap();
                assert_eq!(again, entry);
                assert!(entry.file(ENGINE).is_some() && entry.file(MANIFEST).is_some());
            }
        },
    );
    // A remote whose every answer is generated: status, announced length, body (a mutated
    // entry archive or zeros, cut short or longer than announced). A download returns within
    // the campaign's hang limit, never panics, never accepts more than the entry limit, and
    // anything it accepts is a verified entry.
    const LIMIT: u64 = 16 << 10;
    Campaign::new("remote").slow_cases(150).run(
        |c| {
            let status = [200u16, 200, 200, 206, 404, 403, 500, 503, 301, 999][c.below(10)];
            let body = if c.below(3) == 0 {
                vec![0u8; c.below(3 * LIMIT as usize)]
            } else {
                let archive = seed_entry(c).to_archive();
                if c.below(2) == 0 {
                    archive
                } else {
                    mutate_bytes(c, archive)
                }
            };
            let announced: i64 = match c.below(4) {
                0 => extreme(c),
                1 => -1, // no Content-Length
                _ => body.len() as i64,
            };
            let mut out = status.to_be_bytes().to_vec();
            out.extend(announced.to_le_bytes());
            out.extend(body);
            out
        },
        |input| {
            let status = u16::from_be_bytes([input[0], input[1]]);
            let announced = i64::from_le_bytes(input[2..10].try_into().unwrap());
            let body = input[10..].to_vec();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let body = body.clone();
                    std::thread::spawn(move || answer(stream, status, announced, &body));
                }
            });
            let config = RemoteConfig::new(format!("s3://b/p?endpoint=http://127.0.0.1:{port}"))
                .s3_credentials("access", "secret-value")
                .with_timeout(Duration::from_secs(2))
                .max_entry_bytes(LIMIT);
            let remote = Remote::open(config).unwrap();
            match remote.fetch(KEY) {
                Ok(Some((entry, transfer))) => {
                    assert!(transfer.bytes <= LIMIT, "{} bytes accepted", transfer.bytes);
                    assert!(entry.file(ENGINE).is_some());
                }
                Ok(None) => {}
                Err(e) => assert!(!e.to_string().contains("secret-value"), "{e}"),
            }
            if let Err(e) = remote.list() {
                assert!(!e.to_string().contains("secret-value"), "{e}");
            }
        },
    );
}

/// Answers every request on `stream` with `status`, `announced` (negative: no length) and
/// `body` (HEAD: no body), then closes.
fn answer(stream: std::net::TcpStream, status: u16, announced: i64, body: &[u8]) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
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
        let length = if announced >= 0 {
            format!("Content-Length: {announced}\r\n")
        } else {
            "Connection: close\r\n".to_string()
        };
        let header = format!(
            "HTTP/1.1 {status} X\r\n{length}Last-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\nETag: \"e\"\r\n\r\n"
        );
        if out.write_all(header.as_bytes()).is_err() || head {
            if head {
                continue;
            }
            return;
        }
        let _ = out.write_all(body);
        if announced < 0 || announced as usize != body.len() {
            return;
        }
    }
}

#[test]
fn fuzz_prune_arguments_and_url_secrets() {
    // A prune argument is refused or selects a positive age/size: never "everything".
    let seeds = ["7", "1.5", "30", "10G", "512M", "1K", "0.25"];
    let alphabet = b"0123456789.-+eEinfNaKMGTkmgbB x_";
    Campaign::new("prune-arguments").run(
        |c| mutate_text(c, &seeds, alphabet, b"e308"),
        |bytes| {
            let text = String::from_utf8_lossy(bytes);
            if let Ok(age) = trt_cache::prune::parse_days(&text) {
                assert!(age > Duration::ZERO, "`{text}` → {age:?}");
            }
            if let Ok(size) = trt_cache::prune::parse_size(&text) {
                assert!(size > 0, "`{text}` → {size}");
            }
        },
    );
    // A secret in a URL's credential positions (its password, a query value's password) never
    // reaches a message, whatever else is wrong with the URL: a bad port, a space or control
    // character in the host, junk in the path or the query keys.
    const SECRET: &str = "S3CR3Tz9";
    let junk: [&str; 12] = [
        " ",
        ":",
        ":99999999",
        "%",
        "%zz",
        "\n",
        "\u{1b}[31m",
        "[",
        "]",
        "ü",
        "\t",
        "..",
    ];
    Campaign::new("url-secrets").run(
        |c| {
            let scheme = [
                "s3",
                "webdav+http",
                "webdav+https",
                "redis",
                "rediss",
                "ftp",
            ][c.below(6)];
            let mut host = "cache.example".to_string();
            let mut path = "/bucket/team".to_string();
            let mut key = "endpoint".to_string();
            for part in [&mut host, &mut path, &mut key] {
                if c.below(2) == 0 {
                    let at = c.below(part.len() + 1);
                    part.insert_str(at, junk[c.below(junk.len())]);
                }
            }
            let url = match c.below(3) {
                0 => format!("{scheme}://user:{SECRET}@{host}{path}"),
                1 => format!("{scheme}://{host}{path}?{key}=http://k:{SECRET}@h:9000&region=x"),
                _ => format!("{scheme}://u:{SECRET}@{host}{path}?{key}=https://a:{SECRET}@e"),
            };
            url.into_bytes()
        },
        |bytes| {
            let url = String::from_utf8_lossy(bytes).into_owned();
            let config = RemoteConfig::new(url.clone()).with_timeout(Duration::from_millis(200));
            let shown = config.display_url();
            assert!(!shown.contains(SECRET), "{url:?} shown as {shown:?}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            if let Err(e) = Remote::open(config) {
                assert!(!e.to_string().contains(SECRET), "{url:?}: {e}");
            }
        },
    );
}
