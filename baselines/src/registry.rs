//! Edit methods by name.
//!
//! [`method_names`] and [`build_method`] cover the methods this crate implements. A crate that
//! implements more (the harness adds EmoEditor, which needs the emotion predictor) starts from
//! [`Registry::builtin`] and [`Registry::register`]s its own entries.

use crate::method::{EditError, EditMethod};
use crate::{ct, ip2p};

/// Builds a method from its options (a JSON object; `null` means all defaults).
pub type BuildFn = fn(&serde_json::Value) -> Result<Box<dyn EditMethod>, EditError>;

/// One method the registry can build.
#[derive(Debug, Clone, Copy)]
pub struct MethodEntry {
    /// The registry name (lower-case, filesystem-safe), e.g. `"ct"`.
    pub name: &'static str,
    /// One line for `--help` and reports.
    pub summary: &'static str,
    /// Whether the method needs reference images of the target emotion.
    pub needs_references: bool,
    /// The constructor.
    pub build: BuildFn,
}

fn build_ct(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(ct::ColourTransfer::new(
        ct::CtOptions::from_json(options)?,
    )?))
}

fn build_ip2p(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(ip2p::InstructPix2Pix::new(
        ip2p::Ip2pOptions::from_json(options)?,
    )?))
}

const BUILTIN: &[MethodEntry] = &[
    MethodEntry {
        name: ct::NAME,
        summary: "colour transfer: Pitié et al. 2007 iterative distribution transfer + regrain \
                  (frcs/colour-transfer) onto a reference image of the target emotion",
        needs_references: true,
        build: build_ct,
    },
    MethodEntry {
        name: ip2p::NAME,
        summary: "InstructPix2Pix (Brooks et al. 2023) with the target emotion word as the \
                  instruction: 100 Euler ancestral steps, guidance 7.5 / image 1.5",
        needs_references: false,
        build: build_ip2p,
    },
];

const BUILTIN_NAMES: &[&str] = &[ct::NAME, ip2p::NAME];

/// The names of the methods this crate implements, in the order reports list them.
pub fn method_names() -> &'static [&'static str] {
    BUILTIN_NAMES
}

/// The entries of the methods this crate implements.
pub fn builtin_entries() -> &'static [MethodEntry] {
    BUILTIN
}

/// Builds the built-in method `name` (ASCII case-insensitive) with `options` (a JSON object of
/// that method's options, or `null` for its defaults). An unknown name is an error listing the
/// known ones.
pub fn build_method(
    name: &str,
    options: &serde_json::Value,
) -> Result<Box<dyn EditMethod>, EditError> {
    Registry::builtin().build(name, options)
}

/// A set of methods by name: the built-in ones plus any registered by the caller.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: Vec<MethodEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// The methods this crate implements.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN.to_vec(),
        }
    }

    /// Adds a method; an error if its name (case-insensitively) is already taken.
    pub fn register(&mut self, entry: MethodEntry) -> Result<(), EditError> {
        if self.entry(entry.name).is_some() {
            return Err(EditError::InvalidOption {
                method: entry.name.into(),
                option: "name".into(),
                reason: format!("a method named '{}' is already registered", entry.name),
            });
        }
        self.entries.push(entry);
        Ok(())
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }

    /// The entry named `name` (ASCII case-insensitive).
    pub fn entry(&self, name: &str) -> Option<&MethodEntry> {
        let name = name.trim();
        self.entries
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// Builds the method `name` with `options`; an unknown name is an error listing the known
    /// ones.
    pub fn build(
        &self,
        name: &str,
        options: &serde_json::Value,
    ) -> Result<Box<dyn EditMethod>, EditError> {
        let entry = self.entry(name).ok_or_else(|| EditError::UnknownMethod {
            name: name.into(),
            known: self.names().into_iter().map(String::from).collect(),
        })?;
        (entry.build)(options)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}
