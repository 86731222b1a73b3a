//! The remote tier against real servers started here on loopback ports (see
//! `test_support::servers`): `s3s-fs` (S3), nginx (WebDAV) and Redis. No storage API is mocked.

use std::time::Duration;

use test_support::server_or_skip;
use test_support::servers::{S3_ACCESS_KEY, S3_BUCKET, S3_SECRET_KEY, Server, Silent};
use trt_cache::{ENGINE, Entry, ErrorKind, MANIFEST, Mode, Published, Remote, RemoteConfig};

fn key(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn entry(k: &str, engine: &[u8]) -> Entry {
    Entry::new(
        k,
        [
            (ENGINE.to_string(), engine.to_vec()),
            (MANIFEST.to_string(), br#"{"name":"m"}"#.to_vec()),
        ],
    )
    .unwrap()
}

fn s3_config(server: &Server) -> RemoteConfig {
    RemoteConfig::new(server.s3_url("team"))
        .s3_credentials(S3_ACCESS_KEY, S3_SECRET_KEY)
        .with_timeout(Duration::from_secs(5))
}

fn webdav_config(server: &Server) -> RemoteConfig {
    RemoteConfig::new(format!("webdav+http://{}/team", server.addr))
        .with_timeout(Duration::from_secs(5))
}

fn redis_config(server: &Server) -> RemoteConfig {
    RemoteConfig::new(format!("redis://{}/0", server.addr)).with_timeout(Duration::from_secs(5))
}

/// Miss, publish, hit, and a second publish of the key keeps the first entry.
fn round_trip(remote: &Remote, k: char) {
    let k = key(k);
    assert!(
        remote.fetch(&k).unwrap().is_none(),
        "{} starts empty",
        remote.backend()
    );
    let first = entry(&k, b"first engine");
    assert!(matches!(
        remote.publish(&first).unwrap(),
        Published::Uploaded(_)
    ));
    let (fetched, transfer) = remote.fetch(&k).unwrap().unwrap();
    assert_eq!(fetched, first);
    assert_eq!(transfer.bytes, first.to_archive().len() as u64);
    match remote.publish(&entry(&k, b"second engine")).unwrap() {
        Published::Existing(winner, _) => assert_eq!(*winner, first, "the first entry is kept"),
        other => panic!("{}: {other:?}", remote.backend()),
    }
    assert_eq!(remote.fetch(&k).unwrap().unwrap().0, first);
}

#[test]
fn s3_round_trip_listing_and_removal() {
    let s = server_or_skip!("s3_round_trip_listing_and_removal", Server::s3());
    let remote = Remote::open(s3_config(&s)).unwrap();
    round_trip(&remote, 'a');
    // The object lives under the prefix, as one archive.
    assert!(
        s.data
            .join(S3_BUCKET)
            .join("team")
            .join(format!("{}.tar", key('a')))
            .is_file()
    );
    round_trip(&remote, 'b');
    let listed: Vec<String> = remote.list().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.contains(&key('a')) && listed.contains(&key('b')),
        "{listed:?}"
    );
    remote.remove(&key('a')).unwrap();
    assert!(remote.fetch(&key('a')).unwrap().is_none());
}

#[test]
fn webdav_round_trip_and_listing() {
    let s = server_or_skip!("webdav_round_trip_and_listing", Server::webdav());
    let remote = Remote::open(webdav_config(&s)).unwrap();
    round_trip(&remote, 'c');
    assert!(
        s.data
            .join("team")
            .join(format!("{}.tar", key('c')))
            .is_file()
    );
    let listed: Vec<String> = remote.list().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(listed, [key('c')]);
}

#[test]
fn redis_round_trip_and_listing_is_unsupported() {
    let s = server_or_skip!(
        "redis_round_trip_and_listing_is_unsupported",
        Server::redis(None)
    );
    let remote = Remote::open(redis_config(&s)).unwrap();
    round_trip(&remote, 'd');
    let e = remote.list().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

#[test]
fn corrupt_remote_objects_are_refused_and_replaced() {
    let s3 = server_or_skip!(
        "corrupt_remote_objects_are_refused_and_replaced",
        Server::s3()
    );
    let dav = server_or_skip!(
        "corrupt_remote_objects_are_refused_and_replaced",
        Server::webdav()
    );
    let k = key('e');
    for (remote, object) in [
        (
            Remote::open(s3_config(&s3)).unwrap(),
            s3.data.join(S3_BUCKET).join("team"),
        ),
        (
            Remote::open(webdav_config(&dav)).unwrap(),
            dav.data.join("team"),
        ),
    ] {
        let object = object.join(format!("{k}.tar"));
        let good = entry(&k, b"the engine that was published");
        remote.publish(&good).unwrap();
        // Cut the object in half behind the server's back (a partial upload by a broken
        // client, a disk error).
        let bytes = std::fs::read(&object).unwrap();
        std::fs::write(&object, &bytes[..bytes.len() / 2]).unwrap();
        let e = remote.fetch(&k).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{}: {e}", remote.backend());
        assert!(e.to_string().contains(&k), "{e}");
        // A corrupt entry does not block the key: the next publish replaces it.
        let rebuilt = entry(&k, b"a rebuilt engine");
        assert!(matches!(
            remote.publish(&rebuilt).unwrap(),
            Published::Uploaded(_)
        ));
        assert_eq!(remote.fetch(&k).unwrap().unwrap().0, rebuilt);
        assert!(remote.down().is_none(), "corruption is not an outage");
    }
}

#[test]
fn concurrent_publishers_of_one_key_agree_on_one_entry() {
    let s = server_or_skip!(
        "concurrent_publishers_of_one_key_agree_on_one_entry",
        Server::s3()
    );
    let k = key('f');
    let config = s3_config(&s);
    let results: Vec<(bool, Entry)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (config, k) = (config.clone(), k.clone());
                scope.spawn(move || {
                    let remote = Remote::open(config).unwrap();
                    let mine = entry(&k, format!("engine built by machine {i}").as_bytes());
                    match remote.publish(&mine).unwrap() {
                        Published::Uploaded(_) => (true, mine),
                        Published::Existing(winner, _) => (false, *winner),
                        Published::ReadOnly => unreachable!(),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Every publisher ends with a valid entry, and the remote holds exactly one of them, which
    // every later reader gets. (Which publishers adopt it depends on the server: AWS S3 and
    // MinIO make `If-None-Match: *` atomic, so exactly one upload wins; s3s-fs checks and
    // writes in two steps, so racing uploads can each succeed and the last one stays: a builder that
    // raced may have embedded its own engine; every machine after it gets the stored one.)
    assert!(results.iter().any(|(won, _)| *won), "one upload succeeded");
    let remote = Remote::open(config).unwrap();
    let stored = remote.fetch(&k).unwrap().unwrap().0;
    assert!(
        results.iter().any(|(_, e)| *e == stored),
        "the remote holds one publisher's entry"
    );
    let listed = remote.list().unwrap();
    assert_eq!(listed.len(), 1, "one object per key: {listed:?}");
}

#[test]
fn read_only_and_require_modes_never_write() {
    let s = server_or_skip!("read_only_and_require_modes_never_write", Server::s3());
    for mode in [Mode::Read, Mode::Require] {
        let remote = Remote::open(s3_config(&s).mode(mode)).unwrap();
        assert!(matches!(
            remote.publish(&entry(&key('0'), b"x")).unwrap(),
            Published::ReadOnly
        ));
    }
    let objects = std::fs::read_dir(s.data.join(S3_BUCKET)).unwrap().count();
    assert_eq!(objects, 0, "nothing was written");
}

#[test]
fn wrong_credentials_are_denied_and_mark_the_remote_down() {
    let s = server_or_skip!(
        "wrong_credentials_are_denied_and_mark_the_remote_down",
        Server::s3()
    );
    let remote =
        Remote::open(s3_config(&s).s3_credentials(S3_ACCESS_KEY, "not-the-secret")).unwrap();
    let e = remote.fetch(&key('1')).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("download of entry"), "{e}");
    assert!(remote.down().is_some());

    let r = server_or_skip!(
        "wrong_credentials_are_denied_and_mark_the_remote_down",
        Server::redis(Some("sesame"))
    );
    // Redis's client reports a refused password as a time-out (it keeps reconnecting).
    let remote = Remote::open(
        RemoteConfig::new(format!("redis://:wrong@{}/0", r.addr))
            .with_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let e = remote.fetch(&key('1')).unwrap_err();
    assert_ne!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        !e.to_string().contains("wrong"),
        "no password in messages: {e}"
    );
    let ok = Remote::open(RemoteConfig::new(format!("redis://:sesame@{}/0", r.addr))).unwrap();
    round_trip(&ok, '2');
}

#[test]
fn a_stopped_or_hung_server_is_one_bounded_failure() {
    let mut s = server_or_skip!(
        "a_stopped_or_hung_server_is_one_bounded_failure",
        Server::s3()
    );
    let remote = Remote::open(s3_config(&s)).unwrap();
    remote.publish(&entry(&key('3'), b"x")).unwrap();
    s.stop();
    let e = remote.fetch(&key('3')).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // Later calls do not try again.
    let e = remote.publish(&entry(&key('4'), b"y")).unwrap_err();
    assert!(e.to_string().contains("is down"), "{e}");

    // A server that accepts connections and never answers: the time-out ends the wait.
    let hung = Silent::new();
    for url in [
        format!("s3://{S3_BUCKET}?endpoint=http://{}", hung.addr),
        format!("webdav+http://{}/c", hung.addr),
        format!("redis://{}/0", hung.addr),
    ] {
        let remote =
            Remote::open(RemoteConfig::new(&url).with_timeout(Duration::from_millis(500))).unwrap();
        let e = remote.fetch(&key('5')).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{url}: {e}");
    }
}
