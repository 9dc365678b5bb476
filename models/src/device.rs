//! The `device` and `dtype` options every network-running command and method accepts.

use candle_core::{DType, Device};

/// Why a device or dtype option was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not `cpu`, `cuda` or `cuda:N`.
    #[error("'{0}': expected cpu or cuda:N")]
    BadDevice(String),
    /// candle could not open the CUDA device (or the build has no `cuda` feature).
    #[error("'{spec}': cannot open the device")]
    Unavailable {
        /// The device as given.
        spec: String,
        /// candle's error.
        #[source]
        source: crate::error::Cause<candle_core::Error>,
    },
    /// Not `f32`, `f16` or `bf16`.
    #[error("'{0}': expected f32, f16 or bf16")]
    BadDtype(String),
    /// Half precision asked for on the CPU.
    #[error("'{0}' needs a GPU device; use f32 on the CPU")]
    HalfOnCpu(String),
}

/// Parses `cpu` or `cuda:N` (`cuda` alone is `cuda:0`).
pub fn parse_device(s: &str) -> Result<Device, DeviceError> {
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let bad = || DeviceError::BadDevice(s.to_string());
    let ordinal = s
        .strip_prefix("cuda")
        .map(|r| r.strip_prefix(':').unwrap_or(r))
        .ok_or_else(bad)?;
    let n: usize = if ordinal.is_empty() {
        0
    } else {
        ordinal.parse().map_err(|_| bad())?
    };
    Device::new_cuda(n).map_err(|source| DeviceError::Unavailable {
        spec: s.to_string(),
        source: crate::error::Cause::new(source),
    })
}

/// Parses `f32`, `f16` or `bf16`; half precision only off the CPU.
pub fn parse_dtype(s: &str, device: &Device) -> Result<DType, DeviceError> {
    let dtype = match s {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => return Err(DeviceError::BadDtype(other.to_string())),
    };
    if dtype != DType::F32 && device.is_cpu() {
        return Err(DeviceError::HalfOnCpu(s.to_string()));
    }
    Ok(dtype)
}
