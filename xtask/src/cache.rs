//! `cargo xtask cache <list|verify|prune> [--dir DIR | --remote URL] [--older-than DAYS]
//! [--max-size SIZE] [--dry-run]`: inspects and trims an engine cache, local (default
//! `TRT_BUILD_CACHE_DIR`, else `target/trt-cache`) or remote (`--remote`, else
//! `TRT_BUILD_REMOTE_CACHE` with its credential variables).

use std::path::PathBuf;
use std::time::SystemTime;

use trt_cache::{EntryInfo, LocalCache, PrunePolicy, Remote, RemoteConfig};

use crate::{Result, root};

const USAGE: &str = "usage: cargo xtask cache keygen | cargo xtask cache <list|verify|prune> [--dir DIR | --remote URL] [--older-than DAYS] [--max-size SIZE[K|M|G]] [--dry-run]";

/// The outcome of verifying one entry.
enum Verdict {
    Ok,
    Missing,
    Corrupt(String),
    Unreachable(String),
}

enum Tier {
    Local(LocalCache),
    Remote(Box<Remote>),
}

impl Tier {
    fn list(&self) -> Result<Vec<EntryInfo>> {
        match self {
            Tier::Local(c) => c.list(),
            Tier::Remote(r) => r.list(),
        }
        .map_err(|e| e.to_string())
    }

    /// What verifying one listed entry found: only a failed verification is "corrupt"; an
    /// entry gone since the listing is "missing", a failure to reach it "unreachable".
    fn verify(&self, key: &str) -> Verdict {
        let result = match self {
            Tier::Local(c) => c.lookup(key, false).map(|found| found.is_some()),
            Tier::Remote(r) => r.fetch(key).map(|found| found.is_some()),
        };
        match result {
            Ok(true) => Verdict::Ok,
            Ok(false) => Verdict::Missing,
            Err(e) if e.kind() == trt_cache::ErrorKind::Corrupt => Verdict::Corrupt(e.to_string()),
            Err(e) => Verdict::Unreachable(e.to_string()),
        }
    }

    fn remove(&self, key: &str) -> Result {
        match self {
            Tier::Local(c) => c.remove(key),
            Tier::Remote(r) => r.remove(key),
        }
        .map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        match self {
            Tier::Local(c) => c.root().display().to_string(),
            Tier::Remote(r) => r.config().display_url(),
        }
    }
}

fn age(t: Option<SystemTime>) -> String {
    t.and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| format!("{:.1} d", d.as_secs_f64() / 86_400.0))
        .unwrap_or_else(|| "?".into())
}

/// `cargo xtask cache keygen`: a new Ed25519 key pair for signing entries.
fn keygen() -> Result {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    let key = trt_cache::SigningKey::from_seed(seed);
    println!(
        "secret (TRT_BUILD_CACHE_SIGNING_KEY, on build machines only): {}",
        key.seed_hex()
    );
    println!(
        "public (TRT_BUILD_CACHE_TRUSTED_KEYS, everywhere): {}",
        key.public_key_hex()
    );
    Ok(())
}

pub(crate) fn cache(args: &[String]) -> Result {
    let mut it = args.iter();
    let action = it.next().ok_or(USAGE)?.clone();
    if action == "keygen" {
        return keygen();
    }
    let (mut dir, mut remote, mut policy, mut dry_run) =
        (None, None, PrunePolicy::default(), false);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--remote" => remote = Some(value()?),
            "--older-than" => {
                policy.older_than = Some(
                    trt_cache::prune::parse_days(&value()?)
                        .map_err(|e| format!("--older-than: {e}"))?,
                );
            }
            "--max-size" => {
                policy.max_bytes = Some(
                    trt_cache::prune::parse_size(&value()?)
                        .map_err(|e| format!("--max-size: {e}"))?,
                );
            }
            "--dry-run" => dry_run = true,
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let env = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    let tier = match (dir, remote) {
        (Some(_), Some(_)) => return Err(format!("give --dir or --remote, not both\n{USAGE}")),
        (Some(d), None) => Tier::Local(LocalCache::new(d)),
        (None, Some(url)) => {
            // The URL from the command line, credentials and time-out from the environment.
            let base = RemoteConfig::from_env(|v| {
                if v == "TRT_BUILD_REMOTE_CACHE" {
                    Some(url.clone())
                } else {
                    env(v)
                }
            })
            .map_err(|e| e.to_string())?
            .expect("the URL is given");
            Tier::Remote(Box::new(Remote::open(base).map_err(|e| e.to_string())?))
        }
        (None, None) => match RemoteConfig::from_env(env).map_err(|e| e.to_string())? {
            Some(c) if env("TRT_BUILD_CACHE_DIR").is_none() => {
                Tier::Remote(Box::new(Remote::open(c).map_err(|e| e.to_string())?))
            }
            _ => Tier::Local(LocalCache::new(
                env("TRT_BUILD_CACHE_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| root().join("target").join("trt-cache")),
            )),
        },
    };
    let entries = tier.list()?;
    let total: u64 = entries.iter().map(|e| e.size).sum();
    match action.as_str() {
        "list" => {
            println!("{:<64}  {:>12}  {:>8}", "key", "bytes", "age");
            for e in &entries {
                println!("{:<64}  {:>12}  {:>8}", e.key, e.size, age(e.modified));
            }
            println!(
                "{} entries, {:.1} MiB in {}",
                entries.len(),
                total as f64 / (1 << 20) as f64,
                tier.describe()
            );
            Ok(())
        }
        "verify" => {
            let (mut bad, mut missing, mut unreachable) = (0, 0, 0);
            for e in &entries {
                match tier.verify(&e.key) {
                    Verdict::Ok => println!("ok           {}", e.key),
                    Verdict::Missing => {
                        missing += 1;
                        println!("MISSING      {} (listed, but gone when read)", e.key);
                    }
                    Verdict::Corrupt(err) => {
                        bad += 1;
                        println!("CORRUPT      {}: {err}", e.key);
                    }
                    Verdict::Unreachable(err) => {
                        unreachable += 1;
                        println!("UNREACHABLE  {}: {err}", e.key);
                    }
                }
            }
            println!(
                "{} entries in {}: {} ok, {bad} corrupt, {missing} missing, {unreachable} not verified (unreachable)",
                entries.len(),
                tier.describe(),
                entries.len() - bad - missing - unreachable
            );
            if bad > 0 {
                Err(format!(
                    "{bad} corrupt entries (`cargo xtask cache prune` does not remove them; delete them or let the next build replace them)"
                ))
            } else if unreachable > 0 {
                Err(format!(
                    "{unreachable} entries could not be read: nothing was verified for them (check the remote and run again)"
                ))
            } else {
                Ok(())
            }
        }
        "prune" => {
            if policy == PrunePolicy::default() {
                return Err(format!("prune needs --older-than or --max-size\n{USAGE}"));
            }
            let remove = trt_cache::prune::select(&entries, policy, SystemTime::now());
            for key in &remove {
                if dry_run {
                    println!("would remove {key}");
                } else {
                    tier.remove(key)?;
                    println!("removed {key}");
                }
            }
            println!(
                "{} of {} entries {} from {}",
                remove.len(),
                entries.len(),
                if dry_run {
                    "would be removed"
                } else {
                    "removed"
                },
                tier.describe()
            );
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn entry() -> trt_cache::Entry {
        trt_cache::Entry::new(
            KEY,
            [
                (trt_cache::ENGINE.to_string(), b"engine".to_vec()),
                (trt_cache::MANIFEST.to_string(), b"{}".to_vec()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn verdicts_tell_ok_missing_corrupt_and_unreachable_apart() {
        let dir = tempfile::tempdir().unwrap();
        let local = Tier::Local(LocalCache::new(dir.path()));
        assert!(matches!(local.verify(KEY), Verdict::Missing));
        let Tier::Local(cache) = &local else {
            unreachable!()
        };
        let stored = cache.store(&entry()).unwrap();
        assert!(matches!(local.verify(KEY), Verdict::Ok));
        std::fs::write(stored.path(trt_cache::ENGINE), b"tampered").unwrap();
        assert!(matches!(local.verify(KEY), Verdict::Corrupt(why) if why.contains("SHA-256")));
        // A remote that cannot be reached: unreachable, not corrupt (it used to say CORRUPT).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let config = RemoteConfig::new(format!("s3://b/p?endpoint=http://127.0.0.1:{port}"))
            .s3_credentials("a", "b")
            .with_timeout(std::time::Duration::from_secs(2));
        let remote = Tier::Remote(Box::new(Remote::open(config).unwrap()));
        assert!(matches!(remote.verify(KEY), Verdict::Unreachable(_)));
    }
}
