//! The proxy's global allocator: mimalloc, asked the way its fast paths expect.
//!
//! glibc's allocator spent a tenth of the proxy's time on the request path's short-lived
//! buffers (measured with perf, including `malloc_consolidate`); mimalloc's per-thread pages
//! suit that pattern. The `mimalloc` crate's allocator passes every request to
//! `mi_malloc_aligned`, whose fast path covers blocks up to 1 KiB only: larger ones (a request's
//! boxed future, header maps) took the generic aligned path, about 200 instructions each, five
//! times per proxied request (callgrind, docs/benchmarks.md). An alignment that `mi_malloc`
//! guarantees anyway (16 bytes, and no more than the size) goes to `mi_malloc` here.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// What every `mi_malloc` block is aligned to (`MI_MAX_ALIGN_SIZE` on 64-bit targets).
const GUARANTEED_ALIGN: usize = 16;

/// mimalloc as the global allocator.
pub struct MiMalloc;

/// Whether `mi_malloc(size)` already gives `align`.
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= GUARANTEED_ALIGN && align <= size
}

// SAFETY: every method hands the request to mimalloc with a size and an alignment it honours
// (`mi_malloc` blocks are aligned to 16 bytes and to their size's power of two below that);
// `mi_free` takes any block either function returned.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; a null return is an allocation failure, as GlobalAlloc allows.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (GlobalAlloc's contract).
        unsafe {
            if plain(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// `mi_option_purge_delay` in the vendored mimalloc's `mi_option_e` (v3; libmimalloc-sys
/// names no constant for it). The test below reads its documented default through it.
const PURGE_DELAY: mi::mi_option_t = 15;

/// Gives memory that stays free for `delay` back to the OS (mimalloc's default waits a
/// second for OS pages, ten for its arenas). A process whose work comes in large bursts one after another (the controller
/// compiling 10,000 Routes every few hundred milliseconds under churn) otherwise keeps the
/// last bursts resident. Call it first thing in `main`, before other threads start.
/// `MIMALLOC_PURGE_DELAY` in the environment still decides, as mimalloc documents.
pub fn purge_freed_memory_after(delay: std::time::Duration) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let ms = std::ffi::c_long::try_from(delay.as_millis()).unwrap_or(std::ffi::c_long::MAX);
    // SAFETY: a plain FFI call with a valid option; not concurrent with another option change
    // (the caller runs it before starting threads).
    unsafe { mi::mi_option_set(PURGE_DELAY, ms) }
}

/// `mi_option_allow_thp` in the same enum (libmimalloc-sys names no constant for it either).
const ALLOW_THP: mi::mi_option_t = 43;

/// `PR_SET_THP_DISABLE` and `PR_GET_THP_DISABLE` from `<linux/prctl.h>`.
#[cfg(target_os = "linux")]
const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
#[cfg(target_os = "linux")]
const PR_GET_THP_DISABLE: std::ffi::c_int = 42;

#[cfg(target_os = "linux")]
unsafe extern "C" {
    fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
}

/// Keeps the process on ordinary 4 KiB pages. mimalloc asks for transparent huge pages on its
/// arenas, so the first touch of each 2 MiB region zeroes all of it at once; with memory given
/// back as soon as it is free ([`purge_freed_memory_after`]`(ZERO)`), every burst of
/// allocations after a large free pays those zeroing faults again. The controller's endpoint
/// fast path right after a compile spent 26 of its 30 ms in them (perf, docs/benchmarks.md).
/// Call it first thing in `main`. `MIMALLOC_ALLOW_THP` in the environment still decides.
/// Returns whether the kernel confirms it (always `false` off Linux).
pub fn without_transparent_huge_pages() -> bool {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return false;
    }
    // SAFETY: a plain FFI call with a valid option, before other threads start (the caller's
    // contract, as above).
    unsafe { mi::mi_option_set(ALLOW_THP, 0) };
    #[cfg(target_os = "linux")]
    {
        use std::ffi::c_ulong;
        let (on, none): (c_ulong, c_ulong) = (1, 0);
        // SAFETY: prctl with integer arguments only; THP_DISABLE changes no memory in use,
        // only how future page faults are served.
        unsafe {
            prctl(PR_SET_THP_DISABLE, on, none, none, none) == 0
                && prctl(PR_GET_THP_DISABLE, none, none, none, none) == 1
        }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: plain FFI reads and writes of an option; the only test that touches this option.
        unsafe {
            assert_eq!(
                mi::mi_option_get(PURGE_DELAY),
                1000,
                "mimalloc v3's default"
            );
            purge_freed_memory_after(std::time::Duration::from_millis(25));
            assert_eq!(mi::mi_option_get(PURGE_DELAY), 25);
            // Three before `os_tag`, which the crate names, as in the header.
            assert_eq!(PURGE_DELAY + 3, mi::mi_option_os_tag);
        }
    }

    #[test]
    fn huge_pages_are_turned_off_in_mimalloc_and_the_kernel() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            // The environment decides, as documented.
            assert!(!without_transparent_huge_pages());
            return;
        }
        // SAFETY: plain FFI reads of an option no other test touches.
        unsafe {
            assert_eq!(mi::mi_option_get(ALLOW_THP), 1, "mimalloc v3's default");
        }
        assert_eq!(
            without_transparent_huge_pages(),
            cfg!(target_os = "linux"),
            "prctl(PR_SET_THP_DISABLE) confirmed"
        );
        // SAFETY: as above.
        unsafe {
            assert_eq!(mi::mi_option_get(ALLOW_THP), 0);
        }
    }

    #[test]
    fn blocks_have_the_alignment_asked_for_whichever_path_serves_them() {
        let a = MiMalloc;
        for (size, align) in [
            (8, 8),
            (24, 8),
            (2048, 8),
            (6000, 16),
            (64, 64),
            (4096, 128),
            (8, 16),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero layout, freed with the same allocator.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size} bytes aligned to {align}");
                p.write_bytes(0xab, size);
                let grown = a.realloc(p, layout, size * 3);
                assert_eq!(grown as usize % align, 0, "grown {size} aligned to {align}");
                assert_eq!(*grown, 0xab, "realloc keeps the contents");
                a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                let z = a.alloc_zeroed(layout);
                assert_eq!(z as usize % align, 0);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                a.dealloc(z, layout);
            }
        }
    }
}
