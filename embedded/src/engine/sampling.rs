//! Sampling: turns a request's temperature, top-p, top-k and seed into the llama.cpp sampler
//! chain that picks each next token (greedy when the temperature is 0).

use llama_cpp_2::sampling::LlamaSampler;

/// The sampling settings of one request, as a slot needs them.
pub(super) struct Sampling {
    pub(super) temperature: f32,
    pub(super) top_p: f32,
    pub(super) top_k: i32,
    pub(super) seed: u32,
}

/// The sampler for these settings.
pub(super) fn build_sampler(s: &Sampling) -> LlamaSampler {
    if s.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let mut chain = Vec::with_capacity(4);
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
