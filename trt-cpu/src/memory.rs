//! The allocator's freed memory, handed back to the system (glibc; no-ops elsewhere).

/// Returns memory the allocator holds but no longer uses to the system (glibc's
/// `malloc_trim`; elsewhere a no-op). Called after each plan build, and after each call when
/// [`CpuModel::release_memory_after_calls`] is on (calibration turns it on): without it
/// every worker thread's arena keeps the largest activations it ever freed, which is what
/// peak RSS measured on real models (`nudenet_yolov8` 447 → 370–375 MiB, `dddd_crnn`
/// 567 → 419–430 MiB, same time; BENCHMARKS.md).
pub(crate) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free heap pages; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes the allocator map every buffer of 1 MiB or more on its own and unmap it when it is
/// freed (glibc's `M_MMAP_THRESHOLD`; elsewhere a no-op), for a batch process such as the
/// `trt-calib` command: glibc otherwise raises that threshold as large buffers are freed and
/// then serves them from its heap, which keeps their pages after they are freed. Measured
/// on `dddd_crnn` (54 MB of weights): peak RSS 128 → 109 MiB, same time (BENCHMARKS.md). A
/// process-wide setting, so it is the application's to choose (a library never calls it).
pub fn unmap_large_buffers_on_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` changes an allocator parameter for later allocations; it touches no
    // live allocation and is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
