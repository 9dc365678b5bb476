//! OpenCV's `cv2.Canny(img, low, high)` (aperture 3, L1 gradient), reproduced to the bit.
//!
//! ESS is the mean absolute difference of two Canny edge maps with thresholds 200 / 500, so any
//! deviation from OpenCV's edge decisions moves the metric directly. The steps follow
//! `modules/imgproc/src/canny.cpp` of OpenCV 4.x/5.x:
//!
//! 1. 3x3 Sobel derivatives in 16-bit integers with `BORDER_REPLICATE` (no smoothing first).
//! 2. L1 magnitude `|dx| + |dy|`; on colour input, per pixel, the channel with the largest
//!    magnitude wins (the first channel on ties) and supplies `dx` and `dy` too.
//! 3. Integer thresholds: swap if `low > high`, then `floor` each (OpenCV's `cvFloor`).
//! 4. Non-maximum suppression in one of three directions chosen with the integer tangent test
//!    `tan(22.5 deg) * 2^15 = 13573`, comparing with `>` on one side and `>=` on the other along
//!    rows and columns, strictly on both sides along diagonals; magnitudes outside the image
//!    count as zero.
//! 5. Hysteresis: survivors with magnitude `> high` seed an 8-connected flood through survivors
//!    with magnitude `> low`; flooded pixels are 255, the rest 0.
//!
//! The `imageproc` crate's `canny` blurs first, uses the L2 norm and another neighbourhood, so it
//! is not a substitute.

// The row loops index several slices of one length by one counter: with the lengths checked
// once up front, LLVM drops the bounds checks and vectorises them.
#![allow(clippy::needless_range_loop)]

use image::{GrayImage, RgbImage};

/// `tan(22.5 deg)` in Q15, as OpenCV rounds it.
const TG22: i32 = 13573;
const CANNY_SHIFT: u32 = 15;

/// Map states, as in OpenCV: a pixel that cannot be an edge, a weak candidate, an edge.
const NOT_EDGE: u8 = 1;
const CANDIDATE: u8 = 0;
const EDGE: u8 = 2;

/// OpenCV's `cvFloor` on x86-64: values that do not fit an `int` (and NaN) convert to
/// `i32::MIN`, which makes every gradient pass the threshold; mirrored so that huge thresholds
/// behave as they do in OpenCV rather than as "no edges".
fn cv_floor(v: f64) -> i32 {
    let f = v.floor();
    if !(-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        i32::MIN
    } else {
        f as i32
    }
}

/// One row of Sobel input: the vertical sums `up + 2 mid + down` and differences `down - up` of
/// every channel value, with one replicated pixel either side (`BORDER_REPLICATE`).
#[inline(always)]
fn vertical<const CN: usize>(up: &[u8], mid: &[u8], down: &[u8], vs: &mut [i32], vd: &mut [i32]) {
    let n = up.len();
    let (mid, down) = (&mid[..n], &down[..n]);
    let (vsi, vdi) = (&mut vs[CN..CN + n], &mut vd[CN..CN + n]);
    for i in 0..n {
        let (u, m, d) = (i32::from(up[i]), i32::from(mid[i]), i32::from(down[i]));
        vsi[i] = u + 2 * m + d;
        vdi[i] = d - u;
    }
    for c in 0..CN {
        vs[c] = vs[CN + c];
        vd[c] = vd[CN + c];
        vs[CN + n + c] = vs[n + c];
        vd[CN + n + c] = vd[n + c];
    }
}

/// Horizontal half of the Sobel kernels on a [`vertical`] row: `dx`, `dy` and `|dx| + |dy|` of
/// every channel value.
#[inline(always)]
fn horizontal<const CN: usize>(
    vs: &[i32],
    vd: &[i32],
    dx: &mut [i32],
    dy: &mut [i32],
    mag: &mut [i32],
) {
    let n = dx.len();
    let (dy, mag) = (&mut dy[..n], &mut mag[..n]);
    let (sl, sr) = (&vs[..n], &vs[2 * CN..2 * CN + n]);
    let (dl, dm, dr) = (&vd[..n], &vd[CN..CN + n], &vd[2 * CN..2 * CN + n]);
    for i in 0..n {
        let gx = sr[i] - sl[i];
        let gy = dl[i] + 2 * dm[i] + dr[i];
        dx[i] = gx;
        dy[i] = gy;
        mag[i] = gx.abs() + gy.abs();
    }
}

/// OpenCV's colour rule: per pixel, the channel with the largest magnitude supplies `dx`, `dy`
/// and the magnitude (the earliest channel on ties, hence the strict `>`).
#[inline(always)]
fn select3(
    dx3: &[i32],
    dy3: &[i32],
    mag3: &[i32],
    dx: &mut [i32],
    dy: &mut [i32],
    mag: &mut [i32],
) {
    let n = dx.len();
    let (dy, mag) = (&mut dy[..n], &mut mag[..n]);
    let (dx3, dy3, mag3) = (&dx3[..3 * n], &dy3[..3 * n], &mag3[..3 * n]);
    for x in 0..n {
        let (mut m, mut gx, mut gy) = (mag3[3 * x], dx3[3 * x], dy3[3 * x]);
        for c in 1..3 {
            let mc = mag3[3 * x + c];
            let better = mc > m;
            m = if better { mc } else { m };
            gx = if better { dx3[3 * x + c] } else { gx };
            gy = if better { dy3[3 * x + c] } else { gy };
        }
        dx[x] = gx;
        dy[x] = gy;
        mag[x] = m;
    }
}

/// Non-maximum suppression and the double threshold on one row: `above`, `row` and `below` are
/// magnitude rows with a zero pixel either side; `dx`, `dy` the row's gradients. Writes
/// [`NOT_EDGE`], [`CANDIDATE`] or [`EDGE`] per pixel, branch-free so that it vectorises.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn suppress_row(
    above: &[i32],
    row: &[i32],
    below: &[i32],
    dx: &[i32],
    dy: &[i32],
    low: i32,
    high: i32,
    out: &mut [u8],
) {
    let n = out.len();
    let (dx, dy) = (&dx[..n], &dy[..n]);
    let (al, am, ar) = (&above[..n], &above[1..=n], &above[2..n + 2]);
    let (cl, cm, cr) = (&row[..n], &row[1..=n], &row[2..n + 2]);
    let (bl, bm, br) = (&below[..n], &below[1..=n], &below[2..n + 2]);
    for x in 0..n {
        let m = cm[x];
        let (xs, ys) = (dx[x], dy[x]);
        let ax = xs.abs();
        let ay = ys.abs() << CANNY_SHIFT;
        let tg22x = ax * TG22;
        let tg67x = tg22x + (ax << (CANNY_SHIFT + 1));
        // Within 22.5 deg of horizontal: left and right; of vertical: above and below; else
        // the diagonal that the signs of dx and dy pick, strictly on both sides.
        // Every comparison is made and the results selected with bit operations: picking the
        // diagonal's neighbours before loading them made LLVM gather them, one lane at a time.
        let horizontal = (m > cl[x]) & (m >= cr[x]);
        let vertical = (m > am[x]) & (m >= bm[x]);
        let anti = (m > ar[x]) & (m > bl[x]);
        let main = (m > al[x]) & (m > br[x]);
        let opposite = (xs ^ ys) < 0;
        let diagonal = (opposite & anti) | (!opposite & main);
        let flat = ay < tg22x;
        let steep = ay > tg67x;
        let is_max = (flat & horizontal) | (!flat & steep & vertical) | (!flat & !steep & diagonal);
        let kept = is_max & (m > low);
        out[x] = if !kept {
            NOT_EDGE
        } else if m > high {
            EDGE
        } else {
            CANDIDATE
        };
    }
}

models::multiversion! {
    /// Sobel, channel selection, non-maximum suppression and the double threshold of the image
    /// rows `rows`, streamed one row at a time through a three-row ring of magnitudes (which
    /// starts a row early, so a stripe needs nothing from its neighbours), into `map`: those
    /// rows of the image with a frame of [`NOT_EDGE`], `w + 2` wide.
    fn suppress(
        src: &[u8],
        cn: usize,
        w: usize,
        h: usize,
        thresholds: (i32, i32),
        rows: std::ops::Range<usize>,
        map: &mut [u8],
    ) {
        if cn == 3 {
            suppress_impl::<3>(src, (w, h), thresholds, rows, map);
        } else {
            suppress_impl::<1>(src, (w, h), thresholds, rows, map);
        }
    }
}

#[inline(always)]
fn suppress_impl<const CN: usize>(
    src: &[u8],
    (w, h): (usize, usize),
    (low, high): (i32, i32),
    rows: std::ops::Range<usize>,
    map: &mut [u8],
) {
    let stride = w * CN;
    let mw = w + 2;
    let mut vs = vec![0i32; (w + 2) * CN];
    let mut vd = vec![0i32; (w + 2) * CN];
    // Per channel value (colour only) and per pixel; the pixel rows of the last two image rows
    // are kept for the row whose neighbours are complete.
    let mut chan = vec![0i32; if CN > 1 { 3 * stride } else { 0 }];
    let mut grads = vec![0i32; 4 * w];
    // Three magnitude rows with a zero pixel either side; row -1 and row h are all zero.
    let mut mags = vec![0i32; 3 * mw];
    let zeros = vec![0i32; mw];
    for y in rows.start.saturating_sub(1)..=rows.end {
        if y < h {
            let up = &src[y.saturating_sub(1) * stride..][..stride];
            let mid = &src[y * stride..][..stride];
            let down = &src[(y + 1).min(h - 1) * stride..][..stride];
            vertical::<CN>(up, mid, down, &mut vs, &mut vd);
            let (gdx, gdy) = grads.split_at_mut(2 * w);
            let (dx, dy) = (&mut gdx[(y % 2) * w..][..w], &mut gdy[(y % 2) * w..][..w]);
            let mag = &mut mags[(y % 3) * mw..][1..=w];
            if CN == 1 {
                horizontal::<1>(&vs, &vd, dx, dy, mag);
            } else {
                let (dx3, rest) = chan.split_at_mut(stride);
                let (dy3, mag3) = rest.split_at_mut(stride);
                horizontal::<CN>(&vs, &vd, dx3, dy3, mag3);
                select3(dx3, dy3, mag3, dx, dy, mag);
            }
        } else {
            mags[(y % 3) * mw..][..mw].fill(0);
        }
        if y <= rows.start {
            continue;
        }
        // Row y - 1 now has both neighbours.
        let r = y - 1;
        let above = if r == 0 {
            &zeros[..]
        } else {
            &mags[((r - 1) % 3) * mw..][..mw]
        };
        let row = &mags[(r % 3) * mw..][..mw];
        let below = &mags[(y % 3) * mw..][..mw];
        let (gdx, gdy) = grads.split_at(2 * w);
        let (dx, dy) = (&gdx[(r % 2) * w..][..w], &gdy[(r % 2) * w..][..w]);
        let out = &mut map[(r - rows.start) * mw + 1..][..w];
        suppress_row(above, row, below, dx, dy, low, high, out);
    }
}

/// The positions of every [`EDGE`] in `map`.
fn seeds(map: &[u8]) -> Vec<usize> {
    let mut stack: Vec<usize> = Vec::new();
    // Seeds, found eight states at a time: only EDGE (2) has bit 1 set.
    const BIT1: u64 = 0x0202_0202_0202_0202;
    for (k, chunk) in map.chunks_exact(8).enumerate() {
        let mut word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) & BIT1;
        while word != 0 {
            let byte = word.trailing_zeros() as usize / 8;
            stack.push(k * 8 + byte);
            word &= word - 1;
        }
    }
    let tail = map.len() / 8 * 8;
    stack.extend((tail..map.len()).filter(|&p| map[p] == EDGE));
    stack
}

/// Hysteresis inside one stripe of whole map rows (`offset` is the stripe's start in the map):
/// every [`EDGE`] floods its 8-connected [`CANDIDATE`] neighbours, transitively; neighbours in
/// the rows above and below the stripe are not touched but pushed, as map positions, onto
/// `across`.
fn flood(stripe: &mut [u8], mw: usize, offset: usize, across: &mut Vec<usize>) {
    let stack = seeds(stripe);
    spread(stripe, mw, offset, stack, across);
}

/// Marks the [`CANDIDATE`]s among `stack` (map positions) as edges and floods on from them and
/// from the [`EDGE`]s already on it, over the whole map.
fn flood_from(map: &mut [u8], mw: usize, mut stack: Vec<usize>) {
    stack.retain_mut(|&mut q| match map[q] {
        CANDIDATE => {
            map[q] = EDGE;
            true
        }
        EDGE => true,
        _ => false,
    });
    // The map's frame is never a candidate, so no step leaves the map.
    let mut outside = Vec::new();
    spread(map, mw, 0, stack, &mut outside);
    debug_assert!(outside.is_empty());
}

/// The flood of [`flood`] and [`flood_from`] from the edges on `stack`.
fn spread(
    area: &mut [u8],
    mw: usize,
    offset: usize,
    mut stack: Vec<usize>,
    across: &mut Vec<usize>,
) {
    let (len, w) = (area.len() as isize, mw as isize);
    while let Some(p) = stack.pop() {
        let p = p as isize;
        for q in [
            p - w - 1,
            p - w,
            p - w + 1,
            p - 1,
            p + 1,
            p + w - 1,
            p + w,
            p + w + 1,
        ] {
            if q < 0 || q >= len {
                // Edges lie inside the frame, so even the row above the first is in the map.
                across.push((offset as isize + q) as usize);
            } else if area[q as usize] == CANDIDATE {
                area[q as usize] = EDGE;
                stack.push(q as usize);
            }
        }
    }
}

/// Channel values (pixels times channels) from which the image runs as two stripes on two
/// threads. Handing a stripe to another thread costs about 20 us here (measured with
/// `rayon::join` from outside the pool), about what a 224x224 gray image takes in all, so gray
/// images of that size stay on one thread and RGB ones (three times the gradient work) split.
const PARALLEL_VALUES: usize = 100_000;

fn canny_impl<const CN: usize>(src: &[u8], w: u32, h: u32, low: f64, high: f64) -> GrayImage {
    let (wu, hu) = (w as usize, h as usize);
    if wu == 0 || hu == 0 {
        return GrayImage::new(w, h);
    }
    let (low, high) = if low > high { (high, low) } else { (low, high) };
    let th = (cv_floor(low), cv_floor(high));
    let stripes = hu >= 2 && wu * hu * CN >= PARALLEL_VALUES;
    let out = edges::<CN>(src, (wu, hu), th, stripes);
    GrayImage::from_raw(w, h, out).unwrap_or_else(|| GrayImage::new(w, h))
}

/// The edge map of a non-empty image with integer thresholds, in one pass or in two row stripes.
fn edges<const CN: usize>(
    src: &[u8],
    (wu, hu): (usize, usize),
    th: (i32, i32),
    stripes: bool,
) -> Vec<u8> {
    let mw = wu + 2;
    let mut map = vec![NOT_EDGE; mw * (hu + 2)];
    let mut out = vec![0u8; wu * hu];
    let body = &mut map[mw..mw * (hu + 1)];
    if stripes {
        // Each stripe floods inside itself; the flood's steps into the other stripe wait in
        // `across` for one pass over the whole map. Hysteresis marks the same pixels in any
        // order (everything 8-connected to a seed through candidates), so the map is the same.
        let half = hu / 2;
        let (top, bottom) = body.split_at_mut(half * mw);
        let (mut up, mut down) = (Vec::new(), Vec::new());
        rayon::join(
            || {
                suppress(src, CN, wu, hu, th, 0..half, top);
                flood(top, mw, mw, &mut up);
            },
            || {
                suppress(src, CN, wu, hu, th, half..hu, bottom);
                flood(bottom, mw, (half + 1) * mw, &mut down);
            },
        );
        up.append(&mut down);
        flood_from(&mut map, mw, up);
        let (top, bottom) = out.split_at_mut(half * wu);
        let (mtop, mbottom) = map[mw..].split_at(half * mw);
        rayon::join(|| binarise(mtop, mw, top), || binarise(mbottom, mw, bottom));
    } else {
        suppress(src, CN, wu, hu, th, 0..hu, body);
        let mut frame = Vec::new();
        flood(body, mw, mw, &mut frame);
        // Steps into the frame only: nothing to flood there.
        debug_assert!(frame.iter().all(|&q| map[q] == NOT_EDGE));
        binarise(&map[mw..], mw, &mut out);
    }
    out
}

/// The output image from rows of the map: [`EDGE`] becomes 255, everything else 0.
fn binarise(map: &[u8], mw: usize, out: &mut [u8]) {
    let wu = mw - 2;
    for (o, m) in out.chunks_exact_mut(wu).zip(map.chunks_exact(mw)) {
        for (o, m) in o.iter_mut().zip(&m[1..=wu]) {
            // EDGE (2) -> 255; CANDIDATE (0) and NOT_EDGE (1) -> 0.
            *o = (m >> 1).wrapping_neg();
        }
    }
}

/// Canny edges of an 8-bit gray image, identical to `cv2.Canny(img, low, high)` (aperture 3,
/// `L2gradient=False`). Output pixels are 0 or 255.
///
/// `low` and `high` may be given in either order. Note that with OpenCV's conversion a threshold
/// beyond the `i32` range (or NaN) becomes `i32::MIN`, i.e. lets every local maximum through.
pub fn canny_gray(img: &GrayImage, low: f64, high: f64) -> GrayImage {
    let (w, h) = img.dimensions();
    canny_impl::<1>(img.as_raw(), w, h, low, high)
}

/// Canny edges of an 8-bit RGB image, identical to `cv2.Canny(img, low, high)` on the 3-channel
/// array: each pixel uses the channel with the largest L1 gradient (the first of R, G, B on
/// ties). Output pixels are 0 or 255.
///
/// Same threshold conventions as [`canny_gray`].
pub fn canny_rgb(img: &RgbImage, low: f64, high: f64) -> GrayImage {
    let (w, h) = img.dimensions();
    canny_impl::<3>(img.as_raw(), w, h, low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-stripe pass gives the one-stripe pass's map byte for byte (the fixtures check
    /// the result against OpenCV at even heights; this covers odd ones and both channel counts).
    #[test]
    fn stripes_give_the_single_pass_map() {
        for (cn, w, h) in [(1usize, 131usize, 129usize), (3, 140, 133), (1, 7, 3)] {
            let src: Vec<u8> = (0..w * h * cn)
                .map(|i| ((i * 2_654_435_761) >> 7) as u8)
                .collect();
            let mw = w + 2;
            let th = (100, 300);
            let mut one = vec![NOT_EDGE; mw * h];
            suppress(&src, cn, w, h, th, 0..h, &mut one);
            let mut two = vec![NOT_EDGE; mw * h];
            let half = h / 2;
            let (top, bottom) = two.split_at_mut(half * mw);
            suppress(&src, cn, w, h, th, 0..half, top);
            suppress(&src, cn, w, h, th, half..h, bottom);
            assert_eq!(one, two, "{cn} channels, {w}x{h}");
        }
    }

    /// The whole two-stripe Canny (suppression, flood inside each stripe, the steps across)
    /// gives the one-pass edges, on noise with low thresholds so that edges cross the stripes'
    /// border everywhere, and on a frame of edges that must flood from one stripe into the other.
    #[test]
    fn stripes_give_the_single_pass_edges() {
        for (cn, w, h) in [
            (1usize, 131usize, 129usize),
            (3, 140, 133),
            (1, 7, 3),
            (1, 5, 2),
        ] {
            let noise: Vec<u8> = (0..w * h * cn)
                .map(|i| ((i * 2_654_435_761) >> 9) as u8)
                .collect();
            // A bright ring whose only strong part is in the top stripe.
            let ring: Vec<u8> = (0..w * h * cn)
                .map(|i| {
                    let (x, y) = ((i / cn) % w, (i / cn) / w);
                    let on = x == 1 || y == 1 || x + 2 == w || y + 2 == h;
                    if !on {
                        0
                    } else if y < h / 4 {
                        250
                    } else {
                        60
                    }
                })
                .collect();
            for src in [&noise, &ring] {
                for th in [(20, 60), (100, 300), (40, 1000)] {
                    let (one, two) = if cn == 1 {
                        (
                            edges::<1>(src, (w, h), th, false),
                            edges::<1>(src, (w, h), th, true),
                        )
                    } else {
                        (
                            edges::<3>(src, (w, h), th, false),
                            edges::<3>(src, (w, h), th, true),
                        )
                    };
                    assert_eq!(one, two, "{cn} channels, {w}x{h}, thresholds {th:?}");
                    if th == (20, 60) && w > 8 {
                        assert!(one.contains(&255), "no edges in {w}x{h}");
                    }
                }
            }
        }
    }

    #[test]
    fn constant_images_have_no_edges() {
        let g = GrayImage::from_pixel(40, 30, image::Luma([123]));
        assert!(canny_gray(&g, 200.0, 500.0).pixels().all(|p| p.0[0] == 0));
        assert!(canny_gray(&g, 0.0, 0.0).pixels().all(|p| p.0[0] == 0));
        let c = RgbImage::from_pixel(17, 9, image::Rgb([1, 250, 37]));
        assert!(canny_rgb(&c, 200.0, 500.0).pixels().all(|p| p.0[0] == 0));
    }

    #[test]
    fn step_edge_is_found_once() {
        // A vertical step: Sobel responds on the two columns either side of it; NMS keeps the
        // left one (`>` against the left neighbour, `>=` against the right).
        let g = GrayImage::from_fn(12, 8, |x, _| image::Luma([if x < 6 { 0 } else { 200 }]));
        let e = canny_gray(&g, 200.0, 500.0);
        for y in 0..8 {
            let row: Vec<u8> = (0..12).map(|x| e.get_pixel(x, y).0[0]).collect();
            let mut want = vec![0u8; 12];
            want[5] = 255;
            assert_eq!(row, want, "row {y}");
        }
    }

    #[test]
    fn thresholds_order_does_not_matter() {
        let g = GrayImage::from_fn(20, 20, |x, y| {
            image::Luma([((x * 37 + y * 11) % 256) as u8])
        });
        assert_eq!(canny_gray(&g, 500.0, 200.0), canny_gray(&g, 200.0, 500.0));
    }

    #[test]
    fn degenerate_sizes() {
        assert_eq!(
            canny_gray(&GrayImage::new(0, 0), 1.0, 2.0).dimensions(),
            (0, 0)
        );
        let one = GrayImage::from_pixel(1, 1, image::Luma([255]));
        assert_eq!(canny_gray(&one, 1.0, 2.0).get_pixel(0, 0).0[0], 0);
    }

    #[test]
    fn cv_floor_matches_opencv_conversion() {
        assert_eq!(cv_floor(200.0), 200);
        assert_eq!(cv_floor(200.9), 200);
        assert_eq!(cv_floor(-0.5), -1);
        assert_eq!(cv_floor(f64::NAN), i32::MIN);
        assert_eq!(cv_floor(1e12), i32::MIN);
    }
}
