//! The baselines by name: [`builtin`] is a [`Registry`] of every method this crate implements,
//! which the application extends with EmoEditor.

use emobench_core::edit::method::{EditError, EditMethod};
pub use emobench_core::edit::registry::{BuildFn, MethodEntry, Registry};

use crate::{clipstyler, ct, ip2p, lms, nst};

fn build_ct(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(ct::ColourTransfer::new(
        ct::CtOptions::from_json(options)?,
    )?))
}

fn build_nst(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(nst::NeuralStyleTransfer::new(
        nst::NstOptions::from_json(options)?,
    )?))
}

fn build_clipstyler(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(clipstyler::ClipStyler::new(
        clipstyler::ClipstylerOptions::from_json(options)?,
    )?))
}

fn build_ip2p(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(ip2p::InstructPix2Pix::new(
        ip2p::Ip2pOptions::from_json(options)?,
    )?))
}

fn build_lms(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(lms::Lms::new(options)?))
}

const BUILTIN: &[MethodEntry] = &[
    MethodEntry {
        name: ct::NAME,
        build: build_ct,
    },
    MethodEntry {
        name: nst::NAME,
        build: build_nst,
    },
    MethodEntry {
        name: clipstyler::NAME,
        build: build_clipstyler,
    },
    MethodEntry {
        name: ip2p::NAME,
        build: build_ip2p,
    },
    MethodEntry {
        name: lms::NAME,
        build: build_lms,
    },
];

const BUILTIN_NAMES: &[&str] = &[ct::NAME, nst::NAME, clipstyler::NAME, ip2p::NAME, lms::NAME];

/// The names of the methods this crate implements, in the order reports list them.
pub fn method_names() -> &'static [&'static str] {
    BUILTIN_NAMES
}

/// The entries of the methods this crate implements.
pub fn builtin_entries() -> &'static [MethodEntry] {
    BUILTIN
}

/// A registry of the methods this crate implements.
pub fn builtin() -> Registry {
    Registry::from_entries(BUILTIN)
}

/// Builds the built-in method `name` (ASCII case-insensitive) with `options` (a JSON object of
/// that method's options, or `null` for its defaults). An unknown name is an error listing the
/// known ones.
pub fn build_method(
    name: &str,
    options: &serde_json::Value,
) -> Result<Box<dyn EditMethod>, EditError> {
    builtin().build(name, options)
}
