//! mimalloc's purge delay, set at startup (the one `unsafe` call of the binary),
//! and transparent huge pages turned off for the daemon.
//!
//! The purge delay is how long mimalloc keeps freed pages committed before it
//! gives them back to the OS (1 s, times 10 for arena memory, in the bundled
//! mimalloc v3). Under learner actor churn that kept the daemon's RSS well above
//! its live data (BENCHMARKS.md, "Learning" and "Scale and soak"); 0 purges at
//! once. mimalloc reads the option each time it purges (`mi_arena_purge_delay`
//! calls `mi_option_get`), so setting it before the runtime starts covers every
//! allocation the daemon makes.

use std::ffi::{c_int, c_long};

/// The variable mimalloc reads the option from. When it is set (to anything) the
/// operator's value wins and nothing is changed here.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// `mi_option_purge_delay` in `mi_option_t` (mimalloc.h, v2 and v3 alike: the
/// 16th entry). libmimalloc-sys 0.1.49 declares `mi_option_set` only behind its
/// `extended` feature and has no constant for this option, so both are declared
/// here rather than pulling in the feature (and its extra dependency) for one call.
const MI_OPTION_PURGE_DELAY: c_int = 15;

#[allow(unsafe_code)]
unsafe extern "C" {
    /// From the mimalloc library that libmimalloc-sys compiles and links.
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// The variable with which an operator keeps mimalloc's own THP choice.
const ALLOW_THP_VAR: &str = "MIMALLOC_ALLOW_THP";

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`),
/// unless `MIMALLOC_ALLOW_THP` is set; returns whether it did.
///
/// Why: mimalloc madvises its arenas for huge pages, and with the purge delay at
/// 0 it gives freed memory back at once, so the next allocation there faults a
/// whole 2 MiB page back in and zeroes it. In a c32 gateway profile that was 8 %
/// of the daemon's CPU (`clear_page_erms` under `do_huge_pmd_anonymous_page`),
/// for log reads of a few KB. With 4 KiB pages a fault zeroes only what is
/// touched. The kernel checks the flag at fault time, so memory mapped before
/// the call is covered too.
pub fn disable_transparent_huge_pages() -> std::io::Result<bool> {
    if std::env::var_os(ALLOW_THP_VAR).is_some() {
        return Ok(false);
    }
    #[cfg(target_os = "linux")]
    {
        rustix::thread::disable_transparent_huge_pages(true)?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(false)
}

/// Purge freed memory at once, unless `MIMALLOC_PURGE_DELAY` is set.
pub fn purge_freed_memory_at_once() {
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` takes two integers by value, touches only
    // mimalloc's own option table (a plain store, safe from any thread), and the
    // option index is the one mimalloc.h declares for the linked version. It is
    // called once, at the start of `main`, before any other thread exists.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn turns_transparent_huge_pages_off() {
        if std::env::var_os(ALLOW_THP_VAR).is_some() {
            return;
        }
        assert!(disable_transparent_huge_pages().expect("prctl"));
        assert!(rustix::thread::transparent_huge_pages_are_disabled().expect("prctl"));
    }

    /// The index is right for the linked mimalloc: it holds the purge delay's
    /// documented default (1000 ms in v3, 10 ms in v2) and takes the new value.
    #[test]
    #[allow(unsafe_code)]
    fn sets_the_purge_delay() {
        if std::env::var_os(PURGE_DELAY_VAR).is_some() {
            return;
        }
        // SAFETY: as in `purge_freed_memory_at_once`; reading an option is a load.
        let before = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert!(
            before == 1000 || before == 10,
            "purge delay default {before}"
        );
        purge_freed_memory_at_once();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
    }
}
