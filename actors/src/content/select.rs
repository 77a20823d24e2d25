//! Seeded, pure item selection.

use super::{Difficulty, Item};

/// SplitMix64: a fixed, well-mixed function of the seed (no global RNG).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn category_matches(item: &Item, category: Option<&str>) -> bool {
    category.is_none_or(|c| item.category.eq_ignore_ascii_case(c.trim()))
}

fn candidates<'a>(
    items: &'a [Item],
    difficulty: Option<Difficulty>,
    category: Option<&str>,
) -> Vec<&'a Item> {
    items
        .iter()
        .filter(|i| difficulty.is_none_or(|d| i.difficulty == d))
        .filter(|i| category_matches(i, category))
        .collect()
}

/// Picks one item among those matching `difficulty` and `category` (each `None`
/// means any; the category compares case-insensitively), as a pure function of the
/// items' order and `seed`: the same inputs always give the same item. Derive the
/// seed from event data (e.g. the session id and round number). `None` when nothing
/// matches.
pub fn pick<'a>(
    items: &'a [Item],
    difficulty: Option<Difficulty>,
    category: Option<&str>,
    seed: u64,
) -> Option<&'a Item> {
    pick_excluding(items, difficulty, category, &[], seed)
}

/// Like [`pick`], but avoids the items whose ids are in `exclude` (e.g. those already
/// asked in this session). When every matching item is excluded it repeats one rather
/// than returning `None`; `None` only when nothing matches the filters at all.
pub fn pick_excluding<'a>(
    items: &'a [Item],
    difficulty: Option<Difficulty>,
    category: Option<&str>,
    exclude: &[&str],
    seed: u64,
) -> Option<&'a Item> {
    let all = candidates(items, difficulty, category);
    if all.is_empty() {
        return None;
    }
    let fresh: Vec<&Item> = all
        .iter()
        .copied()
        .filter(|i| !exclude.contains(&i.id.as_str()))
        .collect();
    let pool = if fresh.is_empty() { &all } else { &fresh };
    let n = u64::try_from(pool.len()).ok()?;
    let idx = usize::try_from(splitmix64(seed) % n).ok()?;
    pool.get(idx).copied()
}
