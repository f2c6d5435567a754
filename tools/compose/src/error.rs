//! Why a composition failed: one error type, each variant saying what to
//! fix.

/// Why a composition failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A component file could not be read or is not a component.
    #[error("reading component {file}: {reason}")]
    Input {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The components do not fit together (an export or import is missing
    /// or has another type): the WIT of one of them changed.
    #[error("wiring {what}: {reason}")]
    Wiring {
        /// Which connection.
        what: String,
        /// What wac said.
        reason: String,
    },
    /// A pipeline component imports something its stage is not granted
    /// (e.g. a replacement matcher importing `wasi:http`): composing it
    /// would hand it the composition's import.
    #[error(
        "{file} imports {import}, which is not granted to it (it may import only WASI cli/io/clocks/random/filesystem and: {granted}); rebuild it against its stage world in wit/ (a matcher: wit/matcher/matcher.wit; matchers built for connectzero:pipeline/matcher must be rebuilt, docs/PARTNERS.md)"
    )]
    NotGranted {
        /// The component file.
        file: String,
        /// The import it is not granted.
        import: String,
        /// What it may import besides plain WASI.
        granted: String,
    },
}
