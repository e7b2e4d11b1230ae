//! Sticky A/B assignment: a label may split traffic over several versions
//! by weight, and each user keeps getting the same version while the split
//! stands. The assignment is a pure function of (user, prompt, split), so
//! every replica agrees without sharing any state.

/// One arm of a split: a version and its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arm {
    /// The version served.
    pub version: i64,
    /// Its share, relative to the other arms' weights.
    pub weight: u32,
}

/// The version a user gets from a split. `arms` must not be empty; the
/// order of arms does not matter. Zero-weight arms are never chosen unless
/// every weight is zero (then the lowest version is).
pub fn assign(user: &str, prompt: &str, arms: &[Arm]) -> Option<i64> {
    let mut sorted: Vec<Arm> = arms.to_vec();
    sorted.sort_by_key(|a| a.version);
    let total: u64 = sorted.iter().map(|a| u64::from(a.weight)).sum();
    if total == 0 {
        return sorted.first().map(|a| a.version);
    }
    let mut point = stable_hash(prompt, user) % total;
    for arm in &sorted {
        let w = u64::from(arm.weight);
        if point < w {
            return Some(arm.version);
        }
        point -= w;
    }
    sorted.last().map(|a| a.version)
}

/// FNV-1a over `prompt \0 user`, then a SplitMix64 finaliser for an even
/// spread. Stable across processes, platforms and Rust versions.
fn stable_hash(prompt: &str, user: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in prompt.bytes().chain([0u8]).chain(user.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_weights_within_three_percent_and_users_are_sticky() {
        let arms = [
            Arm {
                version: 2,
                weight: 70,
            },
            Arm {
                version: 3,
                weight: 20,
            },
            Arm {
                version: 4,
                weight: 10,
            },
        ];
        let mut counts = [0u32; 3];
        for u in 0..10_000 {
            let user = format!("U{u:08}");
            let v = assign(&user, "support", &arms).unwrap();
            counts[(v - 2) as usize] += 1;
            // Sticky: asked again, in another order, the same version.
            let mut reversed = arms;
            reversed.reverse();
            assert_eq!(assign(&user, "support", &reversed), Some(v));
        }
        for (count, arm) in counts.iter().zip(&arms) {
            let share = f64::from(*count) / 10_000.0;
            let want = f64::from(arm.weight) / 100.0;
            assert!(
                (share - want).abs() <= 0.03,
                "v{}: {share} vs {want}",
                arm.version
            );
        }
    }

    #[test]
    fn zero_weights_are_skipped() {
        let arms = [
            Arm {
                version: 1,
                weight: 0,
            },
            Arm {
                version: 2,
                weight: 5,
            },
        ];
        for u in 0..100 {
            assert_eq!(assign(&u.to_string(), "p", &arms), Some(2));
        }
        assert_eq!(assign("u", "p", &[]), None);
    }
}
