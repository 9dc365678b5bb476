//! emobench: run, score and study emotion-evoking image edits exactly as "Make Me Happier"
//! (EmoEditor, Lin et al.) did: its emotion predictor and Grad-CAM, the four Table-1 metrics (EMR,
//! ESR, ENRD, ESS), colour transfer and the other baselines (in the `baselines` crate), and the 2AFC
//! human study.

pub mod cli;
pub mod demo;
pub mod edit;
pub mod emoeditor;
pub mod emotion;
pub mod image_io;
pub mod imgproc;
pub mod metrics;
pub mod overlay;
pub mod plots;
pub mod predictor;
pub mod progress;
pub mod provenance;
pub mod report;
pub mod runs;
pub mod score;
pub mod sources;
pub mod study;
