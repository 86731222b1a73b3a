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
}
