//! Where and in which precisions the fixture tests run their networks; shared by every fixture
//! test binary (included with `#[path]`).
//!
//! - `EMOBENCH_DTYPE`: the precisions, comma-separated (`f32`, `f16`, `bf16`; default `f32`).
//!   CI's candle-operator rerun sets `f32,f16,bf16`, so each comparison runs once per precision
//!   against the same f32 reference fixtures. Half precision takes candle's operators on any
//!   device (the fused CPU kernels are f32-only), so on the CPU it checks the numerics a GPU's
//!   half-precision path has (bf16 convolutions on the CPU compute in f32 and round their output,
//!   as a GPU's do: `models::kernels::candle_conv2d`).
//! - `EMOBENCH_DEVICE`: `cpu` (default) or `cuda:N`, for the parity self-check of
//!   `bench/gpu/run.sh` on a GPU machine. Fixtures load on the CPU; the networks and their inputs
//!   move to this device.

#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};

/// The environment variable naming the precisions.
pub const DTYPE_ENV: &str = "EMOBENCH_DTYPE";
/// The environment variable naming the device.
pub const DEVICE_ENV: &str = "EMOBENCH_DEVICE";

/// The precisions this run checks, in the order named.
pub fn dtypes() -> Vec<DType> {
    let spec = std::env::var(DTYPE_ENV).unwrap_or_else(|_| "f32".into());
    spec.split(',')
        .map(|s| {
            models::device::parse_dtype(s.trim()).unwrap_or_else(|e| panic!("{DTYPE_ENV}: {e}"))
        })
        .collect()
}

/// The device this run checks.
pub fn device() -> Device {
    let spec = std::env::var(DEVICE_ENV).unwrap_or_else(|_| "cpu".into());
    models::device::parse_device(&spec).unwrap_or_else(|e| panic!("{DEVICE_ENV}: {e}"))
}

/// A tensor's values as host `f32`, whatever its dtype and device.
pub fn host_f32(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// A tolerance per precision: `f32` is the reference tolerance the test states; `f16` and `bf16`
/// are the largest errors measured on the CPU's candle-operator path with a margin (README,
/// Correctness).
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    /// At f32.
    pub f32: f32,
    /// At f16.
    pub f16: f32,
    /// At bf16.
    pub bf16: f32,
}

impl Tol {
    /// The tolerance at `dtype`.
    pub fn at(&self, dtype: DType) -> f32 {
        match dtype {
            DType::F32 => self.f32,
            DType::F16 => self.f16,
            DType::BF16 => self.bf16,
            other => panic!("no measured tolerance for {other:?}: measure it before checking it"),
        }
    }
}
