//! One malloc arena for the daemon: glibc gives each new thread that allocates its own arena
//! (up to eight per CPU), each with pages of its own resident however little it holds.
//! devmgr's threads are many and mostly idle (up to 20 load threads, the runtime's workers,
//! the socket reader) and allocate little, so one arena costs no measurable contention and
//! saves their pages (the figures are in the crate's `BENCH.md`).

/// Limits glibc's malloc to `arenas` arenas (`mallopt(M_ARENA_MAX, arenas)`); returns
/// whether glibc accepted it. Call it before the runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas(arenas: i32) -> bool {
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator, under the allocator's own
    // lock; M_ARENA_MAX takes any positive count and affects only which arena later
    // allocations use, never memory already handed out. No pointer crosses the call.
    unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, arenas) == 1 }
}

/// Other C libraries keep their own allocation strategy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas(_arenas: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_one_arena_and_threads_still_allocate() {
        assert!(super::limit_arenas(1));
        let joined: Vec<usize> = (0..4)
            .map(|n| std::thread::spawn(move || vec![n; 1000].iter().sum()))
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(joined, vec![0, 1000, 2000, 3000]);
    }
}
