//! The networks emobench runs, and what only networks need.
//!
//! One file per model, as in candle-transformers, each citing its paper and upstream code, with
//! `Config` presets per checkpoint and tensor names equal to the checkpoint's keys:
//! [`resnet`] (the emotion predictor's ResNet-18), [`unet`] and [`vae`] (Stable Diffusion 1.5 /
//! InstructPix2Pix), [`clip_text`] (CLIP ViT-L/14 text tower), [`vgg19`] (torchvision's VGG19
//! features), [`clip_vision`] (CLIP ViT-B/32, both towers) and [`stylenet`] (CLIPstyler's U-Net),
//! the last three differentiable, for the style baselines, with [`augment`] (differentiable crops,
//! perspective and interpolation); [`blip`] (BLIP captioning) and [`gguf_llm`] (GGUF language
//! models with their own [`chat_template`]) for the LMS baseline. Beside them: [`tokenizer`],
//! [`schedulers`] (DDIM, Euler ancestral), [`pipeline`] (the latent-diffusion loops InstructPix2Pix
//! and EmoEditor share), [`noise`] (seeded portable noise), [`weights`] (diffusers folders, the
//! Hugging Face cache, PyTorch checkpoints, SHA-256 records), [`device`] (device and dtype
//! options), [`optim`] (PyTorch-exact optimisers) and [`kernels`] (the fused CPU kernels the predictor and the diffusion models share).
//!
//! Nothing here knows about emotions, runs or metrics: that is the harness core's business.

#![warn(missing_docs)]

pub mod augment;
pub mod blip;
pub mod chat_template;
pub mod clip_text;
pub mod clip_vision;
pub mod device;
pub mod error;
pub mod gguf_llm;
pub mod kernels;
pub mod layers;
pub mod noise;
pub mod optim;
pub mod pipeline;
pub mod resnet;
pub mod schedulers;
pub mod stylenet;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod vgg19;
pub mod weights;
