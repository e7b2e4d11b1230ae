//! Sampling: turns a request's repetition penalty, temperature, top-p, top-k and seed into the
//! llama.cpp sampler chain that picks each next token (greedy when the temperature is 0; the
//! penalty applies either way).

use llama_cpp_2::sampling::LlamaSampler;

/// The sampling settings of one request, as a slot needs them.
pub(super) struct Sampling {
    pub(super) temperature: f32,
    pub(super) top_p: f32,
    pub(super) top_k: i32,
    pub(super) seed: u32,
    pub(super) repeat_penalty: f32,
    pub(super) repeat_last_n: i32,
}

/// The sampler for these settings.
///
/// `n_vocab` is the model's vocabulary size (the penalty needs it). Only
/// generated tokens count as repeats: `llama_sampler_sample` accepts each
/// chosen token into the chain, and the prompt is never accepted, so words
/// of the question are not penalized.
pub(super) fn build_sampler(s: &Sampling, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::with_capacity(5);
    if s.repeat_penalty != 1.0 && s.repeat_last_n > 0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            s.repeat_last_n,
            s.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
        return LlamaSampler::chain_simple(chain);
    }
    if s.top_k > 0 {
        chain.push(LlamaSampler::top_k(s.top_k));
    }
    if s.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(s.top_p, 1));
    }
    chain.push(LlamaSampler::temp(s.temperature));
    chain.push(LlamaSampler::dist(s.seed));
    LlamaSampler::chain_simple(chain)
}
