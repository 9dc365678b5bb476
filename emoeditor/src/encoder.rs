//! EmoEditor's emotion-direction encoder: an MLP from the 8-dimensional direction
//! `onehot(target) - softmax(P(x))` to 77 conditioning tokens that replace the CLIP text
//! embedding of InstructPix2Pix.
//!
//! Lin et al., "Make Me Happier: Evoking Emotions Through Image Diffusion Models" (EmoEditor);
//! upstream `emo_model.py` (`EmoDirectionEncoder`): Linear 8 -> 256 -> 512 -> 768 -> 77 * 768 with
//! ReLU between, none after the last. Checkpoint keys `fc.0`, `fc.2`, `fc.4`, `fc.6` (the ReLUs
//! hold the odd indices). Widths are read from the checkpoint, so tiny test encoders load too.

use candle_core::{Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

/// Tokens the encoder produces (CLIP's context length).
pub const TOKENS: usize = 77;

/// The direction encoder.
#[derive(Debug, Clone)]
pub struct EmoDirectionEncoder {
    layers: Vec<Linear>,
    width: usize,
}

impl EmoDirectionEncoder {
    /// Loads `fc.{0,2,4,6}.{weight,bias}` from `vb`; the last layer must have 77 x width rows.
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let mut layers = Vec::new();
        let mut fan_in = 8;
        let mut last_out = 0;
        for idx in [0, 2, 4, 6] {
            let name = format!("fc.{idx}.weight");
            let (out, _) = vb.get_unchecked(&name)?.dims2()?;
            let lvb = vb.pp(format!("fc.{idx}"));
            let weight = lvb.get((out, fan_in), "weight")?;
            let bias = lvb.get(out, "bias")?;
            layers.push(Linear::new(weight, Some(bias)));
            fan_in = out;
            last_out = out;
        }
        if last_out % TOKENS != 0 {
            return Err(candle_core::Error::Msg(format!(
                "fc.6.weight has {last_out} rows, not a multiple of {TOKENS} tokens"
            )));
        }
        Ok(Self {
            layers,
            width: last_out / TOKENS,
        })
    }

    /// Width of each token (768 for the published checkpoint).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The conditioning tokens (1, 77, width) for one direction.
    pub fn forward(&self, direction: &[f32; 8], device: &Device) -> candle_core::Result<Tensor> {
        let mut x = Tensor::from_slice(direction, (1, 8), device)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x.to_dtype(layer.weight().dtype())?)?;
            if i + 1 < self.layers.len() {
                x = x.relu()?;
            }
        }
        x.reshape((1, TOKENS, self.width))
    }
}
