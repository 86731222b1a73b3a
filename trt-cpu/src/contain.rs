//! Panics inside an inference engine turned into errors: no panic crosses a public API of
//! this crate.

thread_local! {
    static IN_ENGINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a call into an inference engine, whose panics become
/// errors: a panic hook can use it to keep those panics out of the user's terminal.
pub fn inside_engine() -> bool {
    IN_ENGINE.with(std::cell::Cell::get)
}

/// Runs `f`, turning a panic inside the engine into its message (no panic crosses a public
/// API of this crate).
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let outer = IN_ENGINE.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_ENGINE.with(|c| c.set(outer));
    r.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}
