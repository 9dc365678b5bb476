//! Colour transfer (CT), the first baseline of "Make Me Happier": Pitié et al.'s iterative
//! distribution transfer (IDT) of the source's colours onto a reference image's colour
//! distribution, followed by the regraining post-process, as in the reference code
//! frcs/colour-transfer (MATLAB, commit 50397f0, `demo.m`: `colour_transfer_IDT(I0, I1, 10)` then
//! `regrain(I0, IR_idt)`).
//!
//! The pieces are public so tests (and curious users) can run them with chosen rotations:
//! [`idt_with_rotations`], [`regrain()`], [`resize_bilinear`], [`reference_rotations`].
//!
//! Pipeline of [`ColourTransfer::edit`]:
//! 1. source and `references[0]` to `[0, 1]` doubles (`u8 / 255`);
//! 2. axes from [`reference_rotations`]`(iterations, seed)`;
//! 3. IDT on the source's pixels against the reference's pixels;
//! 4. when `regrain` is on, [`regrain()`] of the source and the IDT result;
//! 5. clip to `[0, 1]` and round to 8 bits ([`quantise`]).

mod float_image;
mod idt;
mod regrain;
mod resize;
mod rotation;

pub use float_image::{quantise, FloatImage};
pub use idt::{idt_with_rotations, pseudo_inverse, IdtError, IdtSettings, MATLAB_EPS};
pub use regrain::{regrain, RegrainError, REFERENCE_NBITS};
pub use resize::{contributions, resize_bilinear, Contribution};
pub use rotation::{random_orthogonal, reference_rotations, rotate_axes, Axes, REFERENCE_AXES};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::method::{EditError, EditMethod, EditRequest};

/// The registry name of colour transfer.
pub const NAME: &str = "ct";

/// The human-readable name used in messages.
pub const DISPLAY_NAME: &str = "colour transfer";

/// Options of colour transfer. Every field has the reference's value as its default; in JSON,
/// missing fields take the default and unknown fields are an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CtOptions {
    /// IDT iterations (reference demo: 10). 0 skips IDT.
    pub iterations: usize,
    /// Histogram bins per projection axis (reference: 300). At least 2.
    pub bins: usize,
    /// Damping added to every histogram bin before matching (reference: 1e-6). Positive.
    pub histogram_eps: f64,
    /// Step size of each IDT iteration (reference: 1). Positive.
    pub relaxation: f64,
    /// Keep the reference's one-bin downward shift of every mapped projection (reference: yes);
    /// see [`IdtSettings::reference_bin_shift`].
    pub reference_bin_shift: bool,
    /// Run the regraining post-process after IDT (reference demo: yes).
    ///
    /// Regrain weighs the IDT colours by the source's local gradient magnitude and otherwise
    /// keeps the source's gradients, solving coarse to fine on a pyramid whose levels stop when
    /// a halved side would be 20 pixels or less. So, as in the reference, flat regions take
    /// their colour from the coarse levels: on images under 42 pixels a side (no pyramid) the
    /// result stays close to the source in flat regions, and a constant source comes back
    /// unchanged.
    pub regrain: bool,
    /// Jacobi sweeps per pyramid level of regraining, finest first (reference:
    /// `[4, 16, 32, 64, 64, 64]`). Non-empty when `regrain` is on.
    pub regrain_nbits: Vec<usize>,
    /// Fidelity to the source's gradients in regraining (reference: 1; 0 keeps the IDT result's
    /// colours only where the source is flat). Finite, >= 0.
    pub regrain_smoothness: f64,
}

impl Default for CtOptions {
    fn default() -> Self {
        let idt = IdtSettings::default();
        Self {
            iterations: 10,
            bins: idt.bins,
            histogram_eps: idt.histogram_eps,
            relaxation: idt.relaxation,
            reference_bin_shift: idt.reference_bin_shift,
            regrain: true,
            regrain_nbits: REFERENCE_NBITS.to_vec(),
            regrain_smoothness: 1.0,
        }
    }
}

impl CtOptions {
    /// The IDT part of these options.
    pub fn idt_settings(&self) -> IdtSettings {
        IdtSettings {
            bins: self.bins,
            histogram_eps: self.histogram_eps,
            relaxation: self.relaxation,
            reference_bin_shift: self.reference_bin_shift,
        }
    }

    /// Checks every value; the error names the first bad option.
    pub fn validate(&self) -> Result<(), EditError> {
        let bad = |option: &str, reason: String| {
            Err(EditError::invalid_option(DISPLAY_NAME, option, reason))
        };
        if self.bins < 2 {
            return bad("bins", format!("must be at least 2, got {}", self.bins));
        }
        if !(self.histogram_eps.is_finite() && self.histogram_eps > 0.0) {
            return bad(
                "histogram_eps",
                format!("must be positive and finite, got {}", self.histogram_eps),
            );
        }
        if !(self.relaxation.is_finite() && self.relaxation > 0.0) {
            return bad(
                "relaxation",
                format!("must be positive and finite, got {}", self.relaxation),
            );
        }
        if self.regrain && self.regrain_nbits.is_empty() {
            return bad(
                "regrain_nbits",
                "must list at least one sweep count when regrain is on".into(),
            );
        }
        if !(self.regrain_smoothness.is_finite() && self.regrain_smoothness >= 0.0) {
            return bad(
                "regrain_smoothness",
                format!("must be finite and >= 0, got {}", self.regrain_smoothness),
            );
        }
        Ok(())
    }

    /// Options from a JSON object (`null` gives the defaults).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, EditError> {
        let opts: Self = crate::method::options_from_json(DISPLAY_NAME, value)?;
        opts.validate()?;
        Ok(opts)
    }
}

/// The colour-transfer method. Build it with [`ColourTransfer::new`] or through the registry
/// (`"ct"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ColourTransfer {
    options: CtOptions,
}

impl ColourTransfer {
    /// A colour-transfer method with checked options.
    pub fn new(options: CtOptions) -> Result<Self, EditError> {
        options.validate()?;
        Ok(Self { options })
    }

    /// Its options.
    pub fn options(&self) -> &CtOptions {
        &self.options
    }

    /// Colour transfer with given axes (one set per IDT iteration; `options.iterations` is
    /// ignored), returning the unclipped float result (after regraining when it is on).
    pub fn transfer_with_rotations(
        &self,
        source: &FloatImage,
        reference: &FloatImage,
        rotations: &[Axes],
    ) -> Result<FloatImage, EditError> {
        let o = &self.options;
        let moved = idt_with_rotations(
            source.pixels(),
            reference.pixels(),
            rotations,
            &o.idt_settings(),
        )
        .map_err(|e| EditError::backend(DISPLAY_NAME, e))?;
        let graded = FloatImage::new(source.width(), source.height(), moved)
            .ok_or_else(|| fail("IDT changed the number of pixels".into()))?;
        let out = if o.regrain {
            regrain(source, &graded, &o.regrain_nbits, o.regrain_smoothness)
                .map_err(|e| EditError::backend(DISPLAY_NAME, e))?
        } else {
            graded
        };
        if out.pixels().iter().flatten().any(|v| !v.is_finite()) {
            return Err(fail("the result has non-finite values".into()));
        }
        Ok(out)
    }
}

fn fail(reason: String) -> EditError {
    EditError::Failed {
        method: DISPLAY_NAME.into(),
        reason,
    }
}

fn check_nonempty(img: &RgbImage, role: &str) -> Result<(), EditError> {
    if img.width() == 0 || img.height() == 0 {
        return Err(EditError::EmptyImage {
            method: DISPLAY_NAME.into(),
            role: role.into(),
            width: img.width(),
            height: img.height(),
        });
    }
    Ok(())
}

impl EditMethod for ColourTransfer {
    fn name(&self) -> &str {
        NAME
    }

    fn parameters(&self) -> serde_json::Value {
        // Serialising a struct of numbers, booleans and a Vec cannot fail.
        serde_json::to_value(&self.options).unwrap_or(serde_json::Value::Null)
    }

    fn needs_references(&self) -> bool {
        true
    }

    /// Uses `req.references[0]` as the colour palette (further references are ignored) and
    /// `req.seed` for the random rotations. The output has the source's size.
    fn edit(&self, req: &EditRequest<'_>) -> Result<RgbImage, EditError> {
        let reference = req
            .references
            .first()
            .ok_or_else(|| EditError::MissingReference {
                method: DISPLAY_NAME.into(),
                target: req.target.into(),
            })?;
        check_nonempty(req.source, "source")?;
        check_nonempty(reference, "reference")?;
        let source = FloatImage::from_rgb8(req.source);
        let reference = FloatImage::from_rgb8(reference);
        let rotations = reference_rotations(self.options.iterations, req.seed);
        Ok(self
            .transfer_with_rotations(&source, &reference, &rotations)?
            .to_rgb8())
    }
}
