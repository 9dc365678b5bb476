//! Edit methods by name: the table the `edit` run loop builds its method from.
//!
//! The core knows no method itself: `baselines::registry::builtin` fills a [`Registry`] with the
//! baselines, the application adds EmoEditor, and a user's crate can [`Registry::register`] its
//! own.

use super::method::{EditError, EditMethod};

/// Builds a method from its options (a JSON object; `null` means all defaults).
pub type BuildFn = fn(&serde_json::Value) -> Result<Box<dyn EditMethod>, EditError>;

/// One method a registry can build.
#[derive(Debug, Clone, Copy)]
pub struct MethodEntry {
    /// The registry name (lower-case, filesystem-safe), e.g. `"ct"`.
    pub name: &'static str,
    /// The constructor.
    pub build: BuildFn,
}

/// A set of methods by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<MethodEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A registry of `entries`, in order.
    pub fn from_entries(entries: &[MethodEntry]) -> Self {
        Self {
            entries: entries.to_vec(),
        }
    }

    /// Adds a method; an error if its name (case-insensitively) is already taken.
    pub fn register(&mut self, entry: MethodEntry) -> Result<(), EditError> {
        if self.entry(entry.name).is_some() {
            return Err(EditError::invalid_option(
                entry.name,
                "name",
                format!("a method named '{}' is already registered", entry.name),
            ));
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
