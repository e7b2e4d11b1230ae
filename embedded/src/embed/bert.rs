//! The BERT encoder of all-MiniLM-L6-v2 on the CPU: token, position and segment embeddings,
//! then six layers of 12-head self-attention and a GELU feed-forward block, each followed by a
//! residual LayerNorm, as Hugging Face's `BertModel` computes them.
//!
//! Every matrix product goes through `matrixmultiply`'s `sgemm`. Several texts run through one
//! pass with their tokens stacked as rows, with no padding: the dense layers treat every row
//! alike, so they see one tall matrix (which keeps `sgemm` efficient for short queries), and
//! attention runs per text over just that text's rows (so no attention mask is needed: each
//! token sees exactly the real tokens of its own text).

use std::path::Path;

use super::EmbedError;
use super::safetensors::SafeTensors;

/// Width of a token's hidden state.
pub(crate) const HIDDEN: usize = 384;
/// Attention heads per layer.
const HEADS: usize = 12;
/// Width of one head.
const HEAD_DIM: usize = HIDDEN / HEADS;
/// Encoder layers.
const LAYERS: usize = 6;
/// Width of the feed-forward block.
const INTERMEDIATE: usize = 1536;
/// Positions the position embeddings cover.
pub(crate) const MAX_POSITIONS: usize = 512;
/// Rows of the token embeddings.
pub(crate) const VOCAB: usize = 30522;
/// BERT's LayerNorm epsilon.
const LAYER_NORM_EPS: f32 = 1e-12;

/// A dense layer `y = x·W + b`, with `W` stored input-major (`inputs × outputs`, the transpose
/// of PyTorch's layout) so that `sgemm` packs it from contiguous rows.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections side by side: `HIDDEN × 3·HIDDEN`.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The encoder's weights.
pub(crate) struct Bert {
    word: Vec<f32>,
    position: Vec<f32>,
    /// Segment 0's embedding: every text is a single segment.
    segment: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Reads the weights from `model.safetensors`, checking every tensor's shape.
    pub(crate) fn load(path: &Path) -> Result<Self, EmbedError> {
        let mut st = SafeTensors::open(path)?;
        let word = st.f32("embeddings.word_embeddings.weight", &[VOCAB, HIDDEN])?;
        let position = st.f32(
            "embeddings.position_embeddings.weight",
            &[MAX_POSITIONS, HIDDEN],
        )?;
        let mut segment = st.f32("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?;
        segment.truncate(HIDDEN);
        let embedding_norm = layer_norm(&mut st, "embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let name = |part: &str| format!("encoder.layer.{l}.{part}");
            let query = linear(&mut st, &name("attention.self.query"), HIDDEN, HIDDEN)?;
            let key = linear(&mut st, &name("attention.self.key"), HIDDEN, HIDDEN)?;
            let value = linear(&mut st, &name("attention.self.value"), HIDDEN, HIDDEN)?;
            layers.push(Layer {
                qkv: side_by_side(&[query, key, value]),
                attention_out: linear(&mut st, &name("attention.output.dense"), HIDDEN, HIDDEN)?,
                attention_norm: layer_norm(&mut st, &name("attention.output.LayerNorm"))?,
                intermediate: linear(&mut st, &name("intermediate.dense"), HIDDEN, INTERMEDIATE)?,
                output: linear(&mut st, &name("output.dense"), INTERMEDIATE, HIDDEN)?,
                output_norm: layer_norm(&mut st, &name("output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word,
            position,
            segment,
            embedding_norm,
            layers,
        })
    }

    /// Runs the encoder over `texts` (token ids with `[CLS]` and `[SEP]`, each at most
    /// [`MAX_POSITIONS`] long, every id below [`VOCAB`]); returns the last hidden states, one
    /// row of [`HIDDEN`] per token, the texts' rows one after another.
    pub(crate) fn forward(&self, texts: &[Vec<u32>]) -> Vec<f32> {
        let rows: usize = texts.iter().map(Vec::len).sum();
        let longest = texts.iter().map(Vec::len).max().unwrap_or(0);
        let mut x = vec![0.0f32; rows * HIDDEN];
        let mut qkv = vec![0.0f32; rows * 3 * HIDDEN];
        let mut context = vec![0.0f32; rows * HIDDEN];
        let mut dense = vec![0.0f32; rows * HIDDEN];
        let mut wide = vec![0.0f32; rows * INTERMEDIATE];
        let mut scores = vec![0.0f32; longest * longest];

        self.embed_tokens(texts, &mut x);
        for layer in &self.layers {
            layer.qkv.apply(&x, &mut qkv, rows);
            let mut first = 0;
            for text in texts {
                attention(&qkv, &mut context, first, text.len(), &mut scores);
                first += text.len();
            }
            layer.attention_out.apply(&context, &mut dense, rows);
            layer.attention_norm.add_and_normalize(&mut x, &dense);
            layer.intermediate.apply(&x, &mut wide, rows);
            gelu_in_place(&mut wide);
            layer.output.apply(&wide, &mut dense, rows);
            layer.output_norm.add_and_normalize(&mut x, &dense);
        }
        x
    }

    /// Word + position + segment embeddings, normalized, into `x`.
    fn embed_tokens(&self, texts: &[Vec<u32>], x: &mut [f32]) {
        let mut rows = x.chunks_exact_mut(HIDDEN);
        for text in texts {
            for (position, &id) in text.iter().enumerate() {
                let row = rows.next().expect("x has a row per token");
                let word = &self.word[id as usize * HIDDEN..][..HIDDEN];
                let pos = &self.position[position * HIDDEN..][..HIDDEN];
                for (i, out) in row.iter_mut().enumerate() {
                    *out = word[i] + pos[i] + self.segment[i];
                }
                self.embedding_norm.normalize_row(row);
            }
        }
    }
}

/// Self-attention of one text (rows `first..first + n` of `qkv`) into the same rows of
/// `context`, every head at its own columns.
fn attention(qkv: &[f32], context: &mut [f32], first: usize, n: usize, scores: &mut [f32]) {
    let stride = 3 * HIDDEN;
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    let rows = &qkv[first * stride..(first + n) * stride];
    let out = &mut context[first * HIDDEN..(first + n) * HIDDEN];
    let scores = &mut scores[..n * n];
    for head in 0..HEADS {
        let q = &rows[head * HEAD_DIM..];
        let k = &rows[HIDDEN + head * HEAD_DIM..];
        let v = &rows[2 * HIDDEN + head * HEAD_DIM..];
        // scores = q · kᵀ / √d.
        gemm(
            (n, HEAD_DIM, n),
            scale,
            Operand::row_major(q, stride),
            Operand::transposed(k, stride),
            0.0,
            scores,
            n,
        );
        for row in scores.chunks_exact_mut(n) {
            softmax(row);
        }
        gemm(
            (n, n, HEAD_DIM),
            1.0,
            Operand::row_major(scores, n),
            Operand::row_major(v, stride),
            0.0,
            &mut out[head * HEAD_DIM..],
            HIDDEN,
        );
    }
}

impl Linear {
    /// `out = x·W + b` for `rows` rows.
    fn apply(&self, x: &[f32], out: &mut [f32], rows: usize) {
        let out = &mut out[..rows * self.outputs];
        for row in out.chunks_exact_mut(self.outputs) {
            row.copy_from_slice(&self.bias);
        }
        gemm(
            (rows, self.inputs, self.outputs),
            1.0,
            Operand::row_major(&x[..rows * self.inputs], self.inputs),
            Operand::row_major(&self.weight, self.outputs),
            1.0,
            out,
            self.outputs,
        );
    }
}

impl LayerNorm {
    /// `x = LayerNorm(x + residual)`, row by row.
    fn add_and_normalize(&self, x: &mut [f32], residual: &[f32]) {
        for (row, add) in x
            .chunks_exact_mut(HIDDEN)
            .zip(residual.chunks_exact(HIDDEN))
        {
            row.iter_mut().zip(add).for_each(|(v, a)| *v += a);
            self.normalize_row(row);
        }
    }

    fn normalize_row(&self, row: &mut [f32]) {
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (variance + LAYER_NORM_EPS).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// A matrix operand of [`gemm`]: element `(i, j)` is `data[i·row_stride + j·col_stride]`.
struct Operand<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix whose rows start `row_stride` apart.
    fn row_major(data: &'a [f32], row_stride: usize) -> Self {
        Self {
            data,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major matrix whose rows start `row_stride` apart in `data`.
    fn transposed(data: &'a [f32], row_stride: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: row_stride,
        }
    }

    /// Whether every element of a `rows × cols` matrix lies inside `data`.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `c = alpha·a·b + beta·c` for `a` of `m × k`, `b` of `k × n` and `c` of `m × n` with rows
/// `c_row_stride` apart, through `matrixmultiply::sgemm`.
fn gemm(
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut [f32],
    c_row_stride: usize,
) {
    let c_fits = m == 0 || n == 0 || (m - 1) * c_row_stride + n <= c.len();
    assert!(
        a.holds(m, k) && b.holds(k, n) && c_fits && n <= c_row_stride,
        "gemm operands out of bounds"
    );
    // SAFETY: the assertion above proves every element sgemm reads from `a` and `b` and writes
    // in `c` lies inside its slice; `c` is borrowed mutably, so it overlaps neither input, and
    // since `n <= c_row_stride` no element of `c` is written twice. Strides fit in isize
    // because they index inside allocated slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            c_row_stride as isize,
            1,
        );
    }
}

/// Softmax of one row of attention scores, in place.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Separate passes: the exponentials vectorize only without the running sum beside them.
    row.iter_mut().for_each(|v| *v = exp(*v - max));
    let inv = 1.0 / row.iter().sum::<f32>();
    row.iter_mut().for_each(|v| *v *= inv);
}

/// [`gelu`] over `values`, in place, eight lanes at a time where the CPU has AVX2 (the
/// baseline x86-64 target allows only four); the results are the same either way.
fn gelu_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        unsafe { gelu_avx2(values) };
        return;
    }
    values.iter_mut().for_each(|v| *v = gelu(*v));
}

/// [`gelu_in_place`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gelu_avx2(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = gelu(*v));
}

/// GELU in its exact (erf) form, Hugging Face's `"gelu"`: `x·Φ(x) = x/2 · erfc(-x/√2)`.
///
/// The complementary error function is the Chebyshev fit of Numerical Recipes' `erfcc`, whose
/// relative error is below 1.2e-7 everywhere, so GELU stays within a few f32 ulps for any
/// input, far out in the negative tail too.
#[inline]
fn gelu(x: f32) -> f32 {
    let z = -x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let tail = t * exp(-a * a + poly);
    let erfc = if z >= 0.0 { tail } else { 2.0 - tail };
    0.5 * x * erfc
}

/// `e^x` to about 1 ulp for `x` up to 88 (smaller inputs flush towards zero): Cephes' `expf`
/// polynomial, written without branches or library calls so loops over it vectorize.
#[inline]
fn exp(x: f32) -> f32 {
    // Rounding to nearest by adding 1.5·2²³; the integer lands in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    let exponent = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    p * f32::from_bits(((exponent + 127) as u32) << 23)
}

/// Reads a dense layer and stores its weight input-major.
fn linear(
    st: &mut SafeTensors,
    name: &str,
    inputs: usize,
    outputs: usize,
) -> Result<Linear, EmbedError> {
    let weight = st.f32(&format!("{name}.weight"), &[outputs, inputs])?;
    let bias = st.f32(&format!("{name}.bias"), &[outputs])?;
    let mut transposed = vec![0.0f32; weight.len()];
    for (o, row) in weight.chunks_exact(inputs).enumerate() {
        for (i, &w) in row.iter().enumerate() {
            transposed[i * outputs + o] = w;
        }
    }
    Ok(Linear {
        weight: transposed,
        bias,
        inputs,
        outputs,
    })
}

/// Dense layers over the same input, fused into one whose outputs are theirs side by side.
fn side_by_side(parts: &[Linear]) -> Linear {
    let inputs = parts[0].inputs;
    let outputs: usize = parts.iter().map(|p| p.outputs).sum();
    let mut weight = Vec::with_capacity(inputs * outputs);
    for i in 0..inputs {
        for p in parts {
            weight.extend_from_slice(&p.weight[i * p.outputs..][..p.outputs]);
        }
    }
    Linear {
        weight,
        bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
        inputs,
        outputs,
    }
}

fn layer_norm(st: &mut SafeTensors, name: &str) -> Result<LayerNorm, EmbedError> {
    Ok(LayerNorm {
        gamma: st.f32(&format!("{name}.weight"), &[HIDDEN])?,
        beta: st.f32(&format!("{name}.bias"), &[HIDDEN])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (got, want) = (exp(x), x.exp());
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.37;
        }
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    fn gelu_matches_the_erf_form() {
        // x·Φ(x) computed in f64 with Python's `math.erfc`.
        for (x, want) in [
            (0.0f32, 0.0f32),
            (1.0, 0.841_344_8),
            (-1.0, -0.158_655_25),
            (3.0, 2.995_950_3),
            (-3.0, -0.004_049_694),
            (-6.0, -5.919_526e-9),
        ] {
            let got = gelu(x);
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "gelu({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn gemm_handles_transposed_operands() {
        // a = [[1, 2], [3, 4]], b = aᵀ read through swapped strides.
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let mut c = [0.0f32; 4];
        gemm(
            (2, 2, 2),
            1.0,
            Operand::row_major(&a, 2),
            Operand::transposed(&a, 2),
            0.0,
            &mut c,
            2,
        );
        assert_eq!(c, [5.0, 11.0, 11.0, 25.0]);
    }
}
