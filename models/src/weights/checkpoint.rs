//! Reading state dicts from the file formats predictor checkpoints come in: safetensors, PyTorch's
//! zip format (what `torch.save` writes since 1.6, and how the authors saved `emo_predictor.pt`), and
//! PyTorch's legacy pickle-stream format (`_use_new_zipfile_serialization=False`, older `.pth`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack};
use candle_core::{Device, Tensor};

use crate::error::Cause;

/// Why a checkpoint could not be read; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read checkpoint")]
    Io {
        /// Offending file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is too short to be a checkpoint in any supported format.
    #[error("{path}: not a checkpoint emobench can read ({message}); expected safetensors, a PyTorch zip state dict (.pt) or a legacy PyTorch .pth")]
    Format {
        /// Offending file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The reader of the format the first bytes announce rejected the file.
    #[error("{path}: not a checkpoint emobench can read (expected safetensors, a PyTorch zip state dict (.pt) or a legacy PyTorch .pth)")]
    Parse {
        /// Offending file.
        path: PathBuf,
        /// The reader's error (boxed: candle's error is large).
        source: Box<Cause<candle_core::Error>>,
    },
    /// A tensor could not be converted to `f32` on the device.
    #[error("{path}: tensor '{tensor}' cannot be converted to f32 on the device")]
    Convert {
        /// Offending file.
        path: PathBuf,
        /// The key.
        tensor: String,
        /// candle's error (boxed: it is large).
        source: Box<Cause<candle_core::Error>>,
    },
    /// A tensor the model needs is absent.
    #[error("{path}: missing tensor '{tensor}'")]
    MissingTensor {
        /// Offending file.
        path: PathBuf,
        /// The key that was expected.
        tensor: String,
    },
    /// A tensor is present with the wrong shape.
    #[error("{path}: tensor '{tensor}' has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Offending file.
        path: PathBuf,
        /// The key.
        tensor: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape the model needs.
        expected: Vec<usize>,
    },
}

/// A state dict read from a file, with its provenance.
pub struct StateDict {
    /// Source file.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// Tensors by key, on the CPU, in the dtype they were stored in.
    pub tensors: HashMap<String, Tensor>,
}

impl StateDict {
    /// Returns tensor `key` converted to f32 on `device`, checking its shape.
    pub fn get(
        &self,
        key: &str,
        shape: &[usize],
        device: &Device,
    ) -> Result<Tensor, CheckpointError> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: self.path.clone(),
                tensor: key.to_string(),
            })?;
        if t.dims() != shape {
            return Err(CheckpointError::Shape {
                path: self.path.clone(),
                tensor: key.to_string(),
                found: t.dims().to_vec(),
                expected: shape.to_vec(),
            });
        }
        t.to_dtype(candle_core::DType::F32)
            .and_then(|t| t.to_device(device))
            .map_err(|e| CheckpointError::Convert {
                path: self.path.clone(),
                tensor: key.to_string(),
                source: Box::new(Cause::new(e)),
            })
    }
}

pub use crate::weights::file::sha256_file;

/// Reads a state dict, detecting the format from the file's first bytes rather than its extension.
pub fn load_state_dict(path: &Path) -> Result<StateDict, CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let fmt = |message: String| CheckpointError::Format {
        path: path.to_path_buf(),
        message,
    };
    let parse = |e: candle_core::Error| CheckpointError::Parse {
        path: path.to_path_buf(),
        source: Box::new(Cause::new(e)),
    };
    let mut head = [0u8; 8];
    {
        let mut f = std::fs::File::open(path).map_err(io)?;
        let n = f.read(&mut head).map_err(io)?;
        if n < 8 {
            return Err(fmt(format!("only {n} bytes")));
        }
    }
    let tensors: Vec<(String, Tensor)> = if head.starts_with(b"PK\x03\x04") {
        candle_core::pickle::read_all(path).map_err(parse)?
    } else if head[0] == 0x80 && head[1] == 0x02 {
        read_legacy(path).map_err(parse)?
    } else {
        // safetensors starts with a little-endian u64 header length, then '{'.
        candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(parse)?
            .into_iter()
            .collect()
    };
    let sha256 = sha256_file(path).map_err(io)?;
    Ok(StateDict {
        path: path.to_path_buf(),
        sha256,
        tensors: tensors.into_iter().collect(),
    })
}

fn read_pickle<R: BufRead>(r: &mut R) -> candle_core::Result<Object> {
    let mut stack = Stack::empty();
    stack.read_loop(r)?;
    stack.finalize()
}

/// Legacy layout: five pickles (magic number, protocol version, system info, the object, the list of
/// storage keys), then each storage's raw bytes, in key order, after an 8-byte element count.
fn read_legacy(path: &Path) -> candle_core::Result<Vec<(String, Tensor)>> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    // The magic number is a 10-byte LONG1, which candle's pickle reader cannot hold: check its
    // bytes here instead (PROTO 2, LONG1 len 10, 0x1950a86a20f9469cfc6c little-endian, STOP).
    let mut magic = [0u8; 15];
    r.read_exact(&mut magic)?;
    const MAGIC: [u8; 15] = [
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    if magic != MAGIC {
        candle_core::bail!("not a legacy PyTorch file (bad magic number)");
    }
    for _ in 0..2 {
        read_pickle(&mut r)?;
    }
    let obj = read_pickle(&mut r)?;
    let keys = match read_pickle(&mut r)? {
        Object::List(k) | Object::Tuple(k) => k,
        other => candle_core::bail!("storage key list is {other:?}"),
    };
    let entries = match obj {
        Object::Dict(kv) => kv,
        Object::Reduce { args, .. } => match *args {
            Object::Dict(kv) => kv,
            other => candle_core::bail!("top-level object is not a state dict: {other:?}"),
        },
        other => candle_core::bail!("top-level object is not a state dict: {other:?}"),
    };
    let dir = Path::new("legacy");
    let mut infos = Vec::new();
    for (name, value) in entries {
        if let Some(info) = value.into_tensor_info(name, dir)? {
            infos.push(info);
        }
    }
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for key in keys {
        let key = match key {
            Object::Unicode(k) => k,
            other => candle_core::bail!("storage key is {other:?}"),
        };
        let mut n = [0u8; 8];
        r.read_exact(&mut n)?;
        let numel = u64::from_le_bytes(n) as usize;
        let elem = infos
            .iter()
            .find(|i| i.path == format!("legacy/{key}"))
            .map(|i| i.dtype.size_in_bytes())
            .unwrap_or(4);
        let bytes = numel
            .checked_mul(elem)
            .filter(|b| *b <= 1 << 34)
            .ok_or_else(|| candle_core::Error::Msg(format!("storage {key} too large")))?;
        let mut buf = vec![0u8; bytes];
        r.read_exact(&mut buf)?;
        storages.insert(format!("legacy/{key}"), buf);
    }
    let mut out = Vec::new();
    for info in infos {
        let data = storages
            .get(&info.path)
            .ok_or_else(|| candle_core::Error::Msg(format!("no storage for {}", info.name)))?;
        if !info.layout.is_contiguous() {
            candle_core::bail!("tensor {} is not contiguous", info.name);
        }
        let start = info.layout.start_offset();
        let len = info.layout.shape().elem_count() * info.dtype.size_in_bytes();
        let slice = data.get(start..start + len).ok_or_else(|| {
            candle_core::Error::Msg(format!("storage of {} too short", info.name))
        })?;
        let t = Tensor::from_raw_buffer(slice, info.dtype, info.layout.dims(), &Device::Cpu)?;
        out.push((info.name, t));
    }
    Ok(out)
}
