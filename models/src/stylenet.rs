//! CLIPstyler's StyleNet (`StyleNet.UNet`, ngf 16): a small U-Net whose output image is
//! optimised per content image. Tensor names are those of the PyTorch module's state dict
//! (`conv_init`, `init.conv.0`, `init.conv.3`, `init.skip`, `down1.conv.0`, ...,
//! `down1.downsample`, `encoding.*`, `up3.*`, `up2.*`, `up1.*`, `out.*`, `conv_fin`).
//!
//! Kwon & Ye, "CLIPstyler: Image Style Transfer with a Single Text Condition", CVPR 2022;
//! upstream `cyclomon/CLIPstyler/StyleNet.py`. Every op has a backward in candle:
//! instance norm is written from candle ops (no affine, eps 1e-5, biased variance) and the
//! bilinear x2 upsampling (`nn.Upsample(scale_factor=2, mode='bilinear')`,
//! `align_corners=False`) is two matmuls with interpolation matrices.
//!
//! [`StyleNet::init`] draws PyTorch's default initialisation distributions from a seeded
//! ChaCha8 generator (see [`init_var_map`]).

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;

/// Instance norm without affine parameters over (h, w) of (b, c, h, w).
pub fn instance_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let flat = x.reshape((b, c, h * w))?;
    let n = (h * w) as f64;
    let centred = flat.broadcast_sub(&(flat.sum_keepdim(D::Minus1)? / n)?)?;
    let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / n)?;
    centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .reshape((b, c, h, w))
}

/// `nn.Upsample(scale_factor=2, mode='bilinear')` (align_corners False), differentiable.
pub fn upsample_bilinear2x(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    crate::augment::interpolate_bilinear(x, 2 * h, 2 * w)
}

/// A convolution with bias and a square kernel, differentiable, with the fast input gradient
/// on the CPU in f32 (plain candle `conv2d` elsewhere).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    padding: usize,
    stride: usize,
}

impl Conv {
    /// A convolution of `weight` (cout, cin, k, k) and `bias` (cout).
    pub fn new(weight: Tensor, bias: Tensor, padding: usize, stride: usize) -> Self {
        Self {
            weight,
            bias,
            padding,
            stride,
        }
    }

    /// Applies the convolution to (b, cin, h, w).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::kernels::conv_op::conv2d(x, &self.weight, &self.bias, self.padding, self.stride)
    }
}

fn conv(
    vb: VarBuilder,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<Conv> {
    Ok(Conv {
        weight: vb.get((cout, cin, k, k), "weight")?,
        bias: vb.get(cout, "bias")?,
        padding: pad,
        stride,
    })
}

/// `[conv3-IN-ReLU-conv3-IN-ReLU] + 1x1 skip` (the `conv` Sequential and `skip` of every block).
#[derive(Debug, Clone)]
struct DoubleConv {
    c0: Conv,
    c3: Conv,
    skip: Conv,
}

impl DoubleConv {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            c0: conv(vb.pp("conv.0"), cin, cout, 3, 1, 1)?,
            c3: conv(vb.pp("conv.3"), cout, cout, 3, 1, 1)?,
            skip: conv(vb.pp("skip"), cin, cout, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = instance_norm(&self.c0.forward(x)?, 1e-5)?.relu()?;
        let h = instance_norm(&self.c3.forward(&h)?, 1e-5)?.relu()?;
        h + self.skip.forward(x)?
    }
}

#[derive(Debug, Clone)]
struct Down {
    block: DoubleConv,
    downsample: Conv,
}

impl Down {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            block: DoubleConv::new(vb.clone(), cin, cout)?,
            downsample: conv(vb.pp("downsample"), cout, cout, 4, 2, 1)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let f = self.block.forward(x)?;
        Ok((self.downsample.forward(&f)?, f))
    }
}

/// The StyleNet U-Net.
#[derive(Debug, Clone)]
pub struct StyleNet {
    conv_init: Conv,
    init: DoubleConv,
    down: [Down; 3],
    encoding: DoubleConv,
    up: [DoubleConv; 3],
    out: DoubleConv,
    conv_fin: Conv,
}

/// Every parameter of a StyleNet with base width `ngf`, in the order PyTorch creates (and
/// initialises) them: (name, shape, fan_in). Biases follow their weights.
pub fn parameter_layout(ngf: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    let mut conv = |name: &str, cin: usize, cout: usize, k: usize| {
        v.push((format!("{name}.weight"), vec![cout, cin, k, k]));
        v.push((format!("{name}.bias"), vec![cout]));
    };
    let g = ngf;
    conv("conv_init", 3, g, 1);
    let block = |conv: &mut dyn FnMut(&str, usize, usize, usize), p: &str, cin, cout| {
        conv(&format!("{p}.conv.0"), cin, cout, 3);
        conv(&format!("{p}.conv.3"), cout, cout, 3);
        conv(&format!("{p}.skip"), cin, cout, 1);
    };
    block(&mut conv, "init", g, g);
    for (name, cin, cout) in [
        ("down1", g, g),
        ("down2", g, 2 * g),
        ("down3", 2 * g, 4 * g),
    ] {
        block(&mut conv, name, cin, cout);
        conv(&format!("{name}.downsample"), cout, cout, 4);
    }
    block(&mut conv, "encoding", 4 * g, 8 * g);
    for (name, cin, cout) in [
        ("up3", 8 * g, 4 * g),
        ("up2", 4 * g, 2 * g),
        ("up1", 2 * g, g),
    ] {
        block(&mut conv, name, cin + cout, cout);
    }
    block(&mut conv, "out", 2 * g, g);
    conv("conv_fin", g, 3, 1);
    v
}

/// A [`VarMap`] with PyTorch's default `Conv2d` initialisation drawn from
/// `ChaCha8Rng::seed_from_u64(seed)`: for each tensor of [`parameter_layout`] in order, each
/// element in row-major order, `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (what
/// `kaiming_uniform_(a=sqrt(5))` gives for weights and what PyTorch draws for biases), with
/// fan_in = cin * k * k of the tensor's convolution; each value is `bound * (2u - 1)` with
/// `u = rng.gen::<f32>()`.
pub fn init_var_map(ngf: usize, seed: u64, device: &Device) -> Result<VarMap> {
    init_var_map_with(
        ngf,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        device,
    )
}

/// [`init_var_map`] drawing from a caller's generator (which then continues after the
/// initialisation's draws).
pub fn init_var_map_with<R: Rng>(ngf: usize, rng: &mut R, device: &Device) -> Result<VarMap> {
    let map = VarMap::new();
    let mut fan_in = 1;
    for (name, shape) in parameter_layout(ngf) {
        if shape.len() == 4 {
            fan_in = shape[1] * shape[2] * shape[3];
        }
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|_| bound * (2.0 * rng.gen::<f32>() - 1.0))
            .collect();
        let var = Var::from_tensor(&Tensor::from_vec(vals, shape, device)?)?;
        map.data().lock().expect("var map").insert(name, var);
    }
    Ok(map)
}

/// Loads a StyleNet state dict (safetensors, PyTorch names) into a fresh [`VarMap`] whose
/// variables can be optimised.
pub fn var_map_from_safetensors(
    path: &std::path::Path,
    ngf: usize,
    device: &Device,
) -> Result<VarMap> {
    let tensors = candle_core::safetensors::load(path, device)?;
    let map = VarMap::new();
    for (name, shape) in parameter_layout(ngf) {
        let t = tensors.get(&name).ok_or_else(|| {
            candle_core::Error::Msg(format!("missing tensor {name} in {}", path.display()))
        })?;
        if t.dims() != shape.as_slice() {
            candle_core::bail!(
                "{name} in {}: shape {:?}, expected {shape:?}",
                path.display(),
                t.dims()
            );
        }
        let var = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
        map.data().lock().expect("var map").insert(name, var);
    }
    Ok(map)
}

/// The variables of `map` in PyTorch's `parameters()` order ([`parameter_layout`]).
pub fn ordered_vars(map: &VarMap, ngf: usize) -> Result<Vec<Var>> {
    let data = map.data().lock().expect("var map");
    parameter_layout(ngf)
        .into_iter()
        .map(|(name, _)| {
            data.get(&name)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("StyleNet variable {name} missing")))
        })
        .collect()
}

impl StyleNet {
    /// Builds from a variable builder with the PyTorch names (`ngf` = 16 in CLIPstyler).
    pub fn new(vb: VarBuilder, ngf: usize) -> Result<Self> {
        let g = ngf;
        Ok(Self {
            conv_init: conv(vb.pp("conv_init"), 3, g, 1, 1, 0)?,
            init: DoubleConv::new(vb.pp("init"), g, g)?,
            down: [
                Down::new(vb.pp("down1"), g, g)?,
                Down::new(vb.pp("down2"), g, 2 * g)?,
                Down::new(vb.pp("down3"), 2 * g, 4 * g)?,
            ],
            encoding: DoubleConv::new(vb.pp("encoding"), 4 * g, 8 * g)?,
            up: [
                DoubleConv::new(vb.pp("up3"), 12 * g, 4 * g)?,
                DoubleConv::new(vb.pp("up2"), 6 * g, 2 * g)?,
                DoubleConv::new(vb.pp("up1"), 3 * g, g)?,
            ],
            out: DoubleConv::new(vb.pp("out"), 2 * g, g)?,
            conv_fin: conv(vb.pp("conv_fin"), g, 3, 1, 1, 0)?,
        })
    }

    /// Builds on the variables of `map` (from [`init_var_map`] or
    /// [`var_map_from_safetensors`]); gradients of the output reach those variables.
    pub fn from_var_map(map: &VarMap, ngf: usize, device: &Device) -> Result<Self> {
        Self::new(VarBuilder::from_varmap(map, DType::F32, device), ngf)
    }

    /// The stylised image (b, 3, h, w), through the sigmoid when `use_sigmoid`; h and w must
    /// be multiples of 8.
    pub fn forward(&self, x: &Tensor, use_sigmoid: bool) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if !h.is_multiple_of(8) || !w.is_multiple_of(8) {
            candle_core::bail!("StyleNet needs sides that are multiples of 8, got {h}x{w}");
        }
        let x = self.init.forward(&self.conv_init.forward(x)?)?;
        let (d1, d1f) = self.down[0].forward(&x)?;
        let (d2, d2f) = self.down[1].forward(&d1)?;
        let (d3, d3f) = self.down[2].forward(&d2)?;
        let mut hh = self.encoding.forward(&d3)?;
        for (up, skip) in self.up.iter().zip([&d3f, &d2f, &d1f]) {
            let u = upsample_bilinear2x(&hh)?;
            hh = up.forward(&Tensor::cat(&[&u, skip], 1)?)?;
        }
        let hh = self.out.forward(&Tensor::cat(&[&hh, &x], 1)?)?;
        let hh = self.conv_fin.forward(&hh)?;
        if use_sigmoid {
            candle_nn::ops::sigmoid(&hh)
        } else {
            Ok(hh)
        }
    }
}
