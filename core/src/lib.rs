//! The harness core of emobench: everything needed to run, score and record emotion-evoking
//! image edits exactly as "Make Me Happier" (EmoEditor, Lin et al.) did.
//!
//! - [`emotion`]: the eight categories, valences, target conditions;
//! - [`image_io`]: decoding with limits, EXIF, atomic writes;
//! - [`imgproc`]: Pillow, OpenCV and scikit-image routines reproduced exactly;
//! - [`predictor`]: the emotion predictor P (ResNet-18 from `models`), class orders, Grad-CAM;
//! - [`metrics`] and [`score`]: EMR, ESR, ENRD, ESS per image, over run folders; [`table1`] and
//!   [`confusion`]: their aggregation into Table 1 and the 8x8 matrices;
//! - [`sources`], [`runs`], [`edit`]: `sources.csv`, run-folder layout and shards, the
//!   edit-method trait and the resumable run loop;
//! - [`provenance`], [`progress`]: what produced an output, and progress bars; [`number`]: how
//!   floats are written into CSVs.
//!
//! Rendering (tables, plots, the HTML report) is the `reports` crate's; the methods are in
//! `baselines` and `emoeditor`; the human study in `studies`.

#![warn(missing_docs)]

pub mod confusion;
pub mod edit;
pub mod emotion;
pub mod image_io;
pub mod imgproc;
pub mod metrics;
pub mod number;
pub mod predictor;
pub mod progress;
pub mod provenance;
pub mod runs;
pub mod score;
pub mod sources;
pub mod table1;
