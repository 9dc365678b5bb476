//! The eight Mikels emotion categories used by EmoSet and "Make Me Happier", their valence, the two
//! index orders in circulation, and the target-condition sets (cross-, within-valence).
//!
//! Indices differ between EmoSet (amusement, awe, contentment, excitement, anger, disgust, fear,
//! sadness) and the authors' predictor checkpoint (alphabetical), so everything here maps by name.

use std::fmt;
use std::str::FromStr;

/// One of the eight Mikels emotion categories.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    /// Positive.
    Amusement,
    /// Positive.
    Awe,
    /// Positive.
    Contentment,
    /// Positive.
    Excitement,
    /// Negative.
    Anger,
    /// Negative.
    Disgust,
    /// Negative.
    Fear,
    /// Negative.
    Sadness,
}

/// Valence of an emotion category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Valence {
    /// amusement, awe, contentment, excitement
    Positive,
    /// anger, disgust, fear, sadness
    Negative,
}

/// EmoSet's index order (amusement 0 ... sadness 7).
pub const EMOSET_ORDER: [Emotion; 8] = [
    Emotion::Amusement,
    Emotion::Awe,
    Emotion::Contentment,
    Emotion::Excitement,
    Emotion::Anger,
    Emotion::Disgust,
    Emotion::Fear,
    Emotion::Sadness,
];

/// Alphabetical order, the class order of the authors' `emo_predictor.pt`.
pub const ALPHABETICAL_ORDER: [Emotion; 8] = [
    Emotion::Amusement,
    Emotion::Anger,
    Emotion::Awe,
    Emotion::Contentment,
    Emotion::Disgust,
    Emotion::Excitement,
    Emotion::Fear,
    Emotion::Sadness,
];

/// Error for a word that is not one of the eight emotion names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown emotion '{0}' (expected one of: amusement, awe, contentment, excitement, anger, disgust, fear, sadness)")]
pub struct UnknownEmotion(pub String);

impl Emotion {
    /// All eight, in EmoSet order (the order used for report rows and matrix axes).
    pub const ALL: [Emotion; 8] = EMOSET_ORDER;

    /// Lower-case name as used in files and prompts.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Amusement => "amusement",
            Emotion::Awe => "awe",
            Emotion::Contentment => "contentment",
            Emotion::Excitement => "excitement",
            Emotion::Anger => "anger",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Sadness => "sadness",
        }
    }

    /// Positive or negative.
    pub fn valence(self) -> Valence {
        match self {
            Emotion::Amusement | Emotion::Awe | Emotion::Contentment | Emotion::Excitement => {
                Valence::Positive
            }
            _ => Valence::Negative,
        }
    }

    /// Index in EmoSet order.
    pub fn emoset_index(self) -> usize {
        EMOSET_ORDER.iter().position(|e| *e == self).unwrap_or(0)
    }

    /// The 4 targets of the other valence, in EmoSet order.
    pub fn cross_targets(self) -> Vec<Emotion> {
        Emotion::ALL
            .into_iter()
            .filter(|e| e.valence() != self.valence())
            .collect()
    }

    /// The 3 other targets of the same valence, in EmoSet order.
    pub fn within_targets(self) -> Vec<Emotion> {
        Emotion::ALL
            .into_iter()
            .filter(|e| e.valence() == self.valence() && *e != self)
            .collect()
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Emotion {
    type Err = UnknownEmotion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Emotion::ALL
            .into_iter()
            .find(|e| e.name() == t)
            .ok_or_else(|| UnknownEmotion(s.to_string()))
    }
}

/// Which targets each source is edited towards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditions {
    /// The 4 targets of the other valence (the paper's Table 1 setting).
    Cross,
    /// The 3 other targets of the same valence.
    Within,
    /// All 7 other emotions.
    All,
    /// An explicit list, used for every source.
    List(Vec<Emotion>),
}

impl Conditions {
    /// Targets for a source of the given emotion. A neutral source (no label) gets all eight for
    /// `cross`/`within`/`all`, since valence is undefined for it.
    pub fn targets(&self, source: Option<Emotion>) -> Vec<Emotion> {
        match (self, source) {
            (Conditions::List(l), _) => l.iter().copied().filter(|t| Some(*t) != source).collect(),
            (_, None) => Emotion::ALL.to_vec(),
            (Conditions::Cross, Some(e)) => e.cross_targets(),
            (Conditions::Within, Some(e)) => e.within_targets(),
            (Conditions::All, Some(e)) => Emotion::ALL.into_iter().filter(|t| *t != e).collect(),
        }
    }
}

impl FromStr for Conditions {
    type Err = UnknownEmotion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "cross" => Ok(Conditions::Cross),
            "within" => Ok(Conditions::Within),
            "all" => Ok(Conditions::All),
            list => list
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<_>, _>>()
                .map(Conditions::List),
        }
    }
}

impl fmt::Display for Conditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conditions::Cross => f.write_str("cross"),
            Conditions::Within => f.write_str("within"),
            Conditions::All => f.write_str("all"),
            Conditions::List(l) => {
                let names: Vec<&str> = l.iter().map(|e| e.name()).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_map_by_name() {
        assert_eq!(ALPHABETICAL_ORDER[1], Emotion::Anger);
        assert_eq!(Emotion::Anger.emoset_index(), 4);
        let mut sorted = EMOSET_ORDER.map(|e| e.name());
        sorted.sort();
        assert_eq!(sorted, ALPHABETICAL_ORDER.map(|e| e.name()));
    }

    #[test]
    fn condition_sizes_match_the_paper() {
        for e in Emotion::ALL {
            assert_eq!(Conditions::Cross.targets(Some(e)).len(), 4);
            assert_eq!(Conditions::Within.targets(Some(e)).len(), 3);
            assert_eq!(Conditions::All.targets(Some(e)).len(), 7);
        }
        assert_eq!("Fear".parse::<Emotion>(), Ok(Emotion::Fear));
        assert!("joy".parse::<Emotion>().is_err());
        assert_eq!(
            "awe,fear".parse::<Conditions>().map(|c| c.to_string()),
            Ok("awe,fear".to_string())
        );
    }
}
