//! [`Cause`]: another library's error kept as the typed `#[source]` of one of ours.
//!
//! Our error messages say what failed and name the file; the cause is printed once, by whoever
//! walks the chain (`emobench` joins it with ": " on one line). Some libraries print their own
//! source inside their message (image's `DecodingError`, safetensors' `JsonError`), and candle can
//! append a backtrace or a context on new lines, so the wrapper shows the cause on one line and
//! leaves out of the chain the causes its message already contains.

use std::error::Error;
use std::fmt;

/// A library error kept as the source of one of ours; see the module docs.
pub struct Cause<E>(E);

impl<E> Cause<E> {
    /// Wraps `e`.
    pub fn new(e: E) -> Self {
        Self(e)
    }

    /// The library's error.
    pub fn get(&self) -> &E {
        &self.0
    }

    /// The library's error, unwrapped.
    pub fn into_inner(self) -> E {
        self.0
    }
}

impl<E> From<E> for Cause<E> {
    fn from(e: E) -> Self {
        Self(e)
    }
}

impl<E: fmt::Debug> fmt::Debug for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// candle's message on one line: no backtrace, `context: inner` for a context, and no
/// `path: ".."` prefix (our errors name the file themselves).
fn candle_text(e: &candle_core::Error) -> String {
    use candle_core::Error as C;
    match e {
        C::WithBacktrace { inner, .. } | C::WithPath { inner, .. } => candle_text(inner),
        C::Context { inner, context } => format!("{context}: {}", candle_text(inner)),
        other => one_line(&other.to_string()),
    }
}

/// Joins the non-empty lines of `text` with ": ".
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

impl<E: Error + 'static> fmt::Display for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any: &dyn std::any::Any = &self.0;
        match any.downcast_ref::<candle_core::Error>() {
            Some(c) => f.write_str(&candle_text(c)),
            None => f.write_str(&one_line(&self.0.to_string())),
        }
    }
}

impl<E: Error + 'static> Error for Cause<E> {
    /// The first cause of the library's error whose text its message does not already show.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        let shown = self.0.to_string();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !text.is_empty() && !shown.contains(&text) {
                return Some(cause);
            }
            next = cause.source();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "outer failed: {}", self.0)
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_the_message_already_shows_is_left_out() {
        let c = Cause::new(Outer(std::io::Error::other("disk on fire")));
        assert_eq!(c.to_string(), "outer failed: disk on fire");
        assert!(c.source().is_none());
    }

    #[test]
    fn candle_contexts_and_paths_fit_on_one_line() {
        let e = candle_core::Error::Msg("header too large".into())
            .with_path("/x/model.safetensors")
            .context("loading the unet");
        assert_eq!(
            Cause::new(e).to_string(),
            "loading the unet: header too large"
        );
    }
}
