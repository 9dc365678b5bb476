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

/// Parses `f32`, `f16` or `bf16`, for any device.
///
/// Half precision runs on the CPU too, through candle's operators: the fused CPU kernels take
/// `f32` tensors only ([`crate::kernels::fused_cpu`]), so an `f16` CPU run follows the path a GPU
/// runs. It is slow there; it exists so that the GPU path's half-precision numerics can be checked
/// on a machine without one. candle 0.11's CPU convolution has no `bf16` kernel, so `bf16`
/// convolutions on the CPU compute in `f32` and round their output ([`crate::kernels::candle_conv2d`]).
pub fn parse_dtype(s: &str) -> Result<DType, DeviceError> {
    let dtype = match s {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => return Err(DeviceError::BadDtype(other.to_string())),
    };
    Ok(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_precisions_parse_and_others_are_refused() {
        assert_eq!(parse_dtype("f32").unwrap(), DType::F32);
        assert_eq!(parse_dtype("f16").unwrap(), DType::F16);
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert!(matches!(parse_dtype("f64"), Err(DeviceError::BadDtype(_))));
    }
}
