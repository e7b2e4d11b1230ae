//! Measures the embedded engine the way a chat user feels it: time to first token, prompt and
//! decode speed, and peak memory. `ops/bench_embedded/run.sh` runs it against llama.cpp's
//! Python bindings on the same file; each measurement is printed as one JSON line.
//!
//! ```text
//! cargo run --release --example bench -- --model FILE --prompt-file FILE \
//!     [--threads N] [--context N] [--max-tokens N] [--iterations N]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use switchboard_embedded::{
    ChatTurn, Engine, EngineOptions, GenEvent, GenerateRequest, default_model, default_models_dir,
    pull,
};

struct Args {
    model: Option<PathBuf>,
    prompt_file: Option<PathBuf>,
    threads: usize,
    context: u32,
    max_tokens: u32,
    iterations: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        model: None,
        prompt_file: None,
        threads: EngineOptions::default().threads,
        context: 2048,
        max_tokens: 128,
        iterations: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} takes a number, not {v}"))
        };
        match flag.as_str() {
            "--model" => args.model = Some(PathBuf::from(value()?)),
            "--prompt-file" => args.prompt_file = Some(PathBuf::from(value()?)),
            "--threads" => args.threads = number(value()?)? as usize,
            "--context" => args.context = number(value()?)? as u32,
            "--max-tokens" => args.max_tokens = number(value()?)? as u32,
            "--iterations" => args.iterations = number(value()?)? as usize,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Peak resident memory of this process in KiB (Linux), or 0 where unknown.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn run() -> Result<(), String> {
    let args = parse()?;
    let model = match args.model {
        Some(path) => path,
        None => {
            let dir = default_models_dir().ok_or("no models directory: set HOME")?;
            pull(&default_model(), &dir, &mut |_| {}).map_err(|e| e.to_string())?
        }
    };
    let prompt = match &args.prompt_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => "Explain how a bicycle works.".to_owned(),
    };

    let load_started = Instant::now();
    let engine = Engine::load(
        &model,
        EngineOptions {
            threads: args.threads,
            context_tokens: args.context,
            slots: 1,
            queue: 0,
            ..EngineOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let load_s = load_started.elapsed().as_secs_f64();

    let request = |max_tokens| GenerateRequest {
        max_tokens,
        ..GenerateRequest::new(vec![
            ChatTurn::system("You are a helpful assistant."),
            ChatTurn::user(prompt.trim()),
        ])
    };
    // Warm-up: fault in the weights so every measured run sees the same state.
    engine
        .generate(request(8))
        .map_err(|e| e.to_string())?
        .blocking_collect()
        .map_err(|e| e.to_string())?;

    for iteration in 0..args.iterations {
        let started = Instant::now();
        let mut generation = engine
            .generate(request(args.max_tokens))
            .map_err(|e| e.to_string())?;
        let mut first = None;
        let (prompt_tokens, completion_tokens) = loop {
            match generation.blocking_next() {
                Some(GenEvent::Token(_)) => {
                    first.get_or_insert_with(|| started.elapsed());
                }
                Some(GenEvent::Done {
                    prompt_tokens,
                    completion_tokens,
                    ..
                }) => break (prompt_tokens, completion_tokens),
                Some(GenEvent::Error(e)) => return Err(e.to_string()),
                None => return Err("the generation ended without a result".into()),
            }
        };
        let total = started.elapsed().as_secs_f64();
        let ttft = first.map_or(total, |d| d.as_secs_f64());
        let decode_tps = f64::from(completion_tokens.saturating_sub(1)) / (total - ttft).max(1e-9);
        let prompt_tps = f64::from(prompt_tokens) / ttft;
        println!(
            "{{\"impl\":\"ours\",\"iteration\":{iteration},\"threads\":{},\"prompt_tokens\":{prompt_tokens},\
             \"completion_tokens\":{completion_tokens},\"ttft_s\":{ttft:.4},\"prompt_tps\":{prompt_tps:.1},\
             \"decode_tps\":{decode_tps:.1},\"load_s\":{load_s:.3}}}",
            args.threads
        );
    }
    println!(
        "{{\"impl\":\"ours\",\"peak_rss_kib\":{},\"file_bytes\":{}}}",
        peak_rss_kib(),
        std::fs::metadata(&model).map_or(0, |m| m.len())
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
