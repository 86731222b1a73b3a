//! Which entries a prune removes: those older than an age, then the oldest until the rest fit
//! a size. Pure selection over a listing ([`crate::LocalCache::list`] or
//! [`crate::Remote::list`]), so both tiers prune alike.

use std::time::{Duration, SystemTime};

use crate::local::EntryInfo;

/// What to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Remove entries stored longer ago than this.
    pub older_than: Option<Duration>,
    /// Then remove the oldest entries until the rest total at most this many bytes.
    pub max_bytes: Option<u64>,
}

/// The keys `policy` removes from `entries` at time `now`, oldest first. Entries without a
/// time count as oldest (they cannot prove they are recent).
pub fn select(entries: &[EntryInfo], policy: PrunePolicy, now: SystemTime) -> Vec<String> {
    let mut sorted: Vec<&EntryInfo> = entries.iter().collect();
    sorted.sort_by_key(|e| (e.modified, e.key.clone()));
    let mut remove = Vec::new();
    let mut kept = Vec::new();
    for e in sorted {
        let too_old = policy.older_than.is_some_and(|age| match e.modified {
            Some(t) => now.duration_since(t).is_ok_and(|d| d > age),
            None => true,
        });
        if too_old {
            remove.push(e.key.clone());
        } else {
            kept.push(e);
        }
    }
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = kept.iter().map(|e| e.size).sum();
        for e in kept {
            if total <= max {
                break;
            }
            total -= e.size;
            remove.push(e.key.clone());
        }
    }
    remove
}

/// Longest age a prune accepts: 100 years.
pub const MAX_AGE_DAYS: f64 = 36_500.0;

/// Parses an age in days (`--older-than 30`, `0.5`): a finite number in
/// `0 < days <= MAX_AGE_DAYS`. NaN, infinities, negative or zero ages and overflowing values
/// are refused, so no typo can select every entry.
///
/// # Errors
///
/// A message naming the value and the allowed range.
pub fn parse_days(text: &str) -> Result<Duration, String> {
    let days: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of days"))?;
    if !(days.is_finite() && days > 0.0 && days <= MAX_AGE_DAYS) {
        return Err(format!(
            "`{text}` days: an age must be a number above 0 and at most {MAX_AGE_DAYS} days"
        ));
    }
    // An age that rounds to nothing (`7e-308`) would select every entry: refused like 0.
    if days * 86_400.0 < 1.0 {
        return Err(format!(
            "`{text}` days is under one second, which would select every entry; give an age of at least one second (0.0000116 days)"
        ));
    }
    Ok(Duration::from_secs_f64(days * 86_400.0))
}

/// Parses a size (`--max-size 10G`, `512M`, `100000`): a finite number of at least one byte
/// with an optional unit (B, K, M, G, T; KB/KiB… alike, powers of 1024) that fits in 64 bits.
///
/// # Errors
///
/// A message naming the value and what is allowed.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) if s[..i].is_empty() => return Err(format!("`{text}` is not a size")),
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "`{text}` is not a size: a non-negative number with an optional unit (K, M, G, T)"
        ));
    }
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size"))?;
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        other => {
            return Err(format!(
                "`{text}`: unit `{other}` is not one of B, K, M, G, T"
            ));
        }
    };
    let bytes = n * scale as f64;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64) {
        return Err(format!("`{text}` is out of range (at most 16 EiB)"));
    }
    // A limit below one byte (`0`, `0.2`) would select every entry: never from a typo.
    if bytes < 1.0 {
        return Err(format!(
            "`{text}` is below one byte, which would remove every entry; to empty a cache, delete its folder"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: char, size: u64, age_days: Option<u64>, now: SystemTime) -> EntryInfo {
        EntryInfo {
            key: std::iter::repeat_n(key, 64).collect(),
            size,
            modified: age_days.map(|d| now - Duration::from_secs(d * 86_400)),
        }
    }

    #[test]
    fn age_then_size_oldest_first() {
        let now = SystemTime::now();
        let entries = [
            info('a', 100, Some(40), now),
            info('b', 100, Some(10), now),
            info('c', 100, Some(5), now),
            info('d', 100, Some(1), now),
            info('e', 100, None, now),
        ];
        let key = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
        let by_age = PrunePolicy {
            older_than: Some(Duration::from_secs(30 * 86_400)),
            max_bytes: None,
        };
        assert_eq!(select(&entries, by_age, now), [key('e'), key('a')]);
        let by_size = PrunePolicy {
            older_than: None,
            max_bytes: Some(250),
        };
        assert_eq!(
            select(&entries, by_size, now),
            [key('e'), key('a'), key('b')]
        );
        let both = PrunePolicy {
            older_than: Some(Duration::from_secs(30 * 86_400)),
            max_bytes: Some(100),
        };
        assert_eq!(
            select(&entries, both, now),
            [key('e'), key('a'), key('b'), key('c')]
        );
        assert!(select(&entries, PrunePolicy::default(), now).is_empty());
    }

    #[test]
    fn ages_and_sizes_that_would_select_everything_are_refused() {
        for bad in [
            "NaN", "nan", "-5", "0", "-0", "inf", "1e30", "", "5d", "36501",
        ] {
            assert!(parse_days(bad).is_err(), "{bad} accepted as an age");
            assert!(parse_days("7e-308").is_err());
        }
        assert_eq!(parse_days("30").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_days("0.5").unwrap(), Duration::from_secs(43_200));
        for bad in [
            "-1G", "-1", "NaN", "inf", "1e30", "1e30G", "G", "", "10X", "1.5.2M", "+3M", "0", "0.2",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} accepted as a size");
        }
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("2T").unwrap(), 2 << 40);
    }
}
