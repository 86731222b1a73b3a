//! `cargo xtask cache <list|verify|prune> [--dir DIR | --remote URL] [--older-than DAYS]
//! [--max-size SIZE] [--dry-run]`: inspects and trims an engine cache, local (default
//! `TRT_BUILD_CACHE_DIR`, else `target/trt-cache`) or remote (`--remote`, else
//! `TRT_BUILD_REMOTE_CACHE` with its credential variables).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use trt_cache::{EntryInfo, LocalCache, PrunePolicy, Remote, RemoteConfig};

use crate::{Result, root};

const USAGE: &str = "usage: cargo xtask cache <list|verify|prune> [--dir DIR | --remote URL] [--older-than DAYS] [--max-size SIZE[K|M|G]] [--dry-run]";

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

    fn verify(&self, key: &str) -> std::result::Result<(), trt_cache::Error> {
        match self {
            Tier::Local(c) => c.verify(key),
            Tier::Remote(r) => r.fetch(key).map(|_| ()),
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

fn parse_size(s: &str) -> Result<u64> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("--max-size: `{s}` is not a size"))?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1u64,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("--max-size: unit `{other}` is not one of K, M, G")),
    };
    Ok((n * scale as f64) as u64)
}

fn age(t: Option<SystemTime>) -> String {
    t.and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| format!("{:.1} d", d.as_secs_f64() / 86_400.0))
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn cache(args: &[String]) -> Result {
    let mut it = args.iter();
    let action = it.next().ok_or(USAGE)?.clone();
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
                let v = value()?;
                let days: f64 = v
                    .parse()
                    .map_err(|_| format!("--older-than: `{v}` is not a number of days"))?;
                policy.older_than = Some(Duration::from_secs_f64(days.max(0.0) * 86_400.0));
            }
            "--max-size" => policy.max_bytes = Some(parse_size(&value()?)?),
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
            let mut bad = 0;
            for e in &entries {
                match tier.verify(&e.key) {
                    Ok(()) => println!("ok       {}", e.key),
                    Err(err) => {
                        bad += 1;
                        println!("CORRUPT  {}: {err}", e.key);
                    }
                }
            }
            println!(
                "{} entries verified in {}, {bad} corrupt",
                entries.len(),
                tier.describe()
            );
            if bad > 0 {
                Err(format!(
                    "{bad} corrupt entries (`cargo xtask cache prune` does not remove them; delete them or let the next build replace them)"
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
