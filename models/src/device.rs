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
    /// `bf16` asked for on the CPU.
    #[error(
        "'bf16' needs a GPU device (candle's CPU convolution has no bf16 kernel); use f32 or f16"
    )]
    Bf16OnCpu,
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

/// Parses `f32`, `f16` or `bf16` for `device`.
///
/// Half precision runs on the CPU too, through candle's operators: the fused CPU kernels take
/// `f32` tensors only ([`crate::kernels::fused_cpu`]), so an `f16` CPU run follows the path a GPU
/// runs. It is slow there; it exists so that the GPU path's half-precision numerics can be checked
/// on a machine without one. `bf16` is refused on the CPU: candle 0.11's CPU convolution has no
/// `bf16` kernel.
pub fn parse_dtype(s: &str, device: &Device) -> Result<DType, DeviceError> {
    let dtype = match s {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => return Err(DeviceError::BadDtype(other.to_string())),
    };
    if dtype == DType::BF16 && device.is_cpu() {
        return Err(DeviceError::Bf16OnCpu);
    }
    Ok(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_is_accepted_on_the_cpu_except_bf16() {
        let cpu = Device::Cpu;
        assert_eq!(parse_dtype("f32", &cpu).unwrap(), DType::F32);
        assert_eq!(parse_dtype("f16", &cpu).unwrap(), DType::F16);
        assert!(matches!(
            parse_dtype("bf16", &cpu),
            Err(DeviceError::Bf16OnCpu)
        ));
        assert!(matches!(
            parse_dtype("f64", &cpu),
            Err(DeviceError::BadDtype(_))
        ));
    }
}
