//! The sentence embedder with the real all-MiniLM-L6-v2, fetched with `pull_embedding_model`
//! into the model cache: what a user of search would notice. Similar sentences must score far
//! above unrelated ones, embeddings must match an independent implementation
//! (`minilm_reference.jsonl`, written by `minilm_reference.py`), long texts must be cut rather
//! than fail, and a broken model folder must say which file is wrong.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::{cache_dir, scratch};
use switchboard_embedded::{
    EMBEDDING_MODEL_DIR, EmbedError, Progress, TextEmbedder, default_embedding_model, pull,
    pull_embedding_model,
};

/// The unpacked model folder, pulled into the cache on first use.
fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        pull_embedding_model(&cache_dir(), &mut |p| {
            if !matches!(p, Progress::Transferred { .. }) {
                eprintln!("embedding model: {p:?}")
            }
        })
        .unwrap_or_else(|e| panic!("cannot provide the embedding model: {e}"))
    })
}

fn embedder() -> &'static TextEmbedder {
    static EMBEDDER: OnceLock<TextEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        TextEmbedder::load(model_dir()).unwrap_or_else(|e| panic!("embedder should load: {e}"))
    })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

fn similarity(a: &str, b: &str) -> f32 {
    let v = embedder().embed(&[a, b]);
    dot(&v[0], &v[1])
}

/// One line of the reference fixture.
struct Reference {
    text: String,
    tokens: usize,
    embedding: Option<Vec<f32>>,
}

fn references() -> Vec<Reference> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/minilm_reference.jsonl");
    let text = fs::read_to_string(&path).expect("read the reference fixture");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("fixture line is JSON");
            Reference {
                text: v["text"].as_str().expect("text").to_string(),
                tokens: v["tokens"].as_u64().expect("tokens") as usize,
                embedding: v.get("embedding").map(|e| {
                    e.as_array()
                        .expect("embedding list")
                        .iter()
                        .map(|x| x.as_f64().expect("number") as f32)
                        .collect()
                }),
            }
        })
        .collect()
}

#[test]
fn paraphrases_score_far_above_unrelated_sentences() {
    let cases = [
        (
            "How do I reset my password?",
            "What are the steps to change my login password?",
            "The weather in Paris is sunny today.",
        ),
        (
            "A man is playing a guitar on stage.",
            "Someone performs music with a guitar in front of an audience.",
            "The quarterly budget report is due on Friday.",
        ),
        (
            "The deploy failed because the database migration timed out.",
            "Our release broke: the schema migration took too long.",
            "I had pancakes for breakfast.",
        ),
    ];
    for (query, paraphrase, unrelated) in cases {
        let close = similarity(query, paraphrase);
        let far = similarity(query, unrelated);
        assert!(
            close > 0.45 && far < 0.15 && close - far > 0.4,
            "`{query}`: paraphrase {close:.3}, unrelated {far:.3}"
        );
    }
}

#[test]
fn embeddings_match_the_reference_implementation() {
    let refs: Vec<Reference> = references()
        .into_iter()
        .filter(|r| r.embedding.is_some())
        .collect();
    assert!(refs.len() >= 3, "the fixture holds reference embeddings");
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    // Together in one call (one batch) and each on its own: the same vectors.
    let together = embedder().embed(&texts);
    for (r, got) in refs.iter().zip(&together) {
        let want = r.embedding.as_deref().expect("filtered on embedding");
        assert_eq!(got.len(), 384);
        let cosine = dot(got, want) / (norm(got) * norm(want));
        let deviation = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            cosine >= 0.9999 && deviation < 1e-4,
            "`{}`: cosine {cosine}, largest deviation {deviation}",
            r.text
        );
        let alone = &embedder().embed(&[r.text.as_str()])[0];
        assert!(
            dot(alone, got) > 0.999_999,
            "`{}` depends on its batch",
            r.text
        );
    }
}

#[test]
fn token_counts_match_the_reference_tokenizer() {
    let e = embedder();
    for r in references() {
        assert_eq!(
            e.count_tokens(&r.text),
            r.tokens,
            "token count of {:?}",
            r.text
        );
    }
}

#[test]
fn embeddings_have_unit_length() {
    let texts = [
        "",
        "a",
        "Hello, world!",
        "emoji only 😀😀😀",
        "我爱北京天安门",
        "\u{200B}\u{0}",
    ];
    let e = embedder();
    assert_eq!(e.dimensions(), 384);
    for (text, v) in texts.iter().zip(e.embed(&texts)) {
        assert_eq!(v.len(), e.dimensions());
        assert!((norm(&v) - 1.0).abs() < 1e-5, "{text:?}: norm {}", norm(&v));
        assert!(v.iter().all(|x| x.is_finite()), "{text:?}");
    }
    assert!(e.embed(&[]).is_empty());
}

#[test]
fn a_long_text_is_embedded_from_its_first_tokens() {
    let e = embedder();
    assert_eq!(e.max_tokens(), 256);
    let words: Vec<String> = (0..1000)
        .map(|i| format!("word{} and", ["alpha", "beta", "gamma", "delta"][i % 4]))
        .collect();
    let long = words.join(" ");
    assert!(e.count_tokens(&long) > 2000, "{}", e.count_tokens(&long));
    // A prefix with more than max_tokens - 2 tokens: the same first 254 tokens.
    let prefix = words[..200].join(" ");
    assert!(e.count_tokens(&prefix) > e.max_tokens());
    let other = "Cook the pasta for nine minutes, then drain it.";
    let v = e.embed(&[&long, &prefix, other]);
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    assert!(
        dot(&v[0], &v[1]) > 0.999_999,
        "the text beyond max_tokens must not change its embedding"
    );
    assert!(dot(&v[0], &v[2]) < 0.5, "another text embeds differently");
}

#[test]
fn one_embedder_serves_several_threads() {
    let e = embedder();
    let texts = ["first thread text", "second thread text, a little longer"];
    let expected = e.embed(&texts);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| e.embed(&texts))).collect();
        for h in handles {
            let got = h.join().expect("thread finished");
            for (g, w) in got.iter().zip(&expected) {
                assert!(dot(g, w) > 0.999_999);
            }
        }
    });
}

#[test]
fn pulling_again_restores_a_damaged_file_from_the_kept_zip() {
    let spec = default_embedding_model();
    let zip = pull(&spec, &cache_dir(), &mut |_| {})
        .unwrap_or_else(|e| panic!("cannot provide the embedding model zip: {e}"));
    let models = scratch("embed-pull");
    let zip_name = spec.file_name;
    fs::copy(&zip, models.join(&zip_name)).expect("copy the model zip");
    let mut events = Vec::new();
    let dir = pull_embedding_model(&models, &mut |p| events.push(p)).expect("unpacks");
    assert_eq!(dir, models.join(EMBEDDING_MODEL_DIR));
    assert!(
        events
            .iter()
            .any(|p| matches!(p, Progress::AlreadyPresent { path } if path.ends_with(&zip_name))),
        "the zip in place is used, not fetched: {events:?}"
    );
    fs::write(dir.join("tokenizer.json"), "{}").expect("damage the tokenizer");
    pull_embedding_model(&models, &mut |_| {}).expect("unpacks again");
    let e = TextEmbedder::load(&dir).expect("the restored model loads");
    assert_eq!(e.count_tokens("Hello, world!"), 4);
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_missing_folder_names_the_file_and_the_fix() {
    let dir = scratch("embed-missing");
    let err = TextEmbedder::load(&dir.join("nowhere")).expect_err("nothing to load");
    assert!(matches!(err, EmbedError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("pull_embedding_model"),
        "{msg}"
    );
}

#[test]
fn damaged_model_files_name_the_file_and_the_fix() {
    let dir = scratch("embed-damaged");
    let tokenizer = dir.join("tokenizer.json");
    let weights = dir.join("model.safetensors");
    fs::copy(model_dir().join("tokenizer.json"), &tokenizer).expect("copy the tokenizer");

    // Weights cut short, as by an interrupted copy.
    let mut bytes = fs::read(model_dir().join("model.safetensors")).expect("read the weights");
    bytes.truncate(1 << 20);
    fs::write(&weights, &bytes).expect("write cut weights");
    let err = TextEmbedder::load(&dir).expect_err("cut weights");
    assert!(matches!(err, EmbedError::BadHeader { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&weights.display().to_string()), "{msg}");
    assert!(
        msg.contains("cut short") && msg.contains("pull_embedding_model"),
        "{msg}"
    );

    // Something that is not a weights file at all.
    fs::write(&weights, "<html>404 Not Found</html>").expect("write");
    let err = TextEmbedder::load(&dir).expect_err("not weights");
    assert!(matches!(err, EmbedError::BadHeader { .. }), "{err:?}");

    // A tokenizer.json that is not one.
    fs::write(&tokenizer, r#"{"model": {"type": "BPE"}}"#).expect("write");
    let err = TextEmbedder::load(&dir).expect_err("not WordPiece");
    assert!(matches!(err, EmbedError::BadTokenizer { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&tokenizer.display().to_string()) && msg.contains("WordPiece"),
        "{msg}"
    );
}

#[test]
fn weights_of_another_model_name_the_tensor() {
    let dir = scratch("embed-foreign");
    fs::copy(
        model_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .expect("copy");
    // A well-formed safetensors file holding one tensor of the wrong shape.
    let header = r#"{"embeddings.word_embeddings.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 16]);
    fs::write(dir.join("model.safetensors"), &bytes).expect("write");
    let err = TextEmbedder::load(&dir).expect_err("wrong shape");
    assert!(matches!(err, EmbedError::WrongShape { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("embeddings.word_embeddings.weight"),
        "{err}"
    );

    let header = r#"{"unrelated":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 16]);
    fs::write(dir.join("model.safetensors"), &bytes).expect("write");
    let err = TextEmbedder::load(&dir).expect_err("missing tensor");
    assert!(matches!(err, EmbedError::MissingTensor { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("embeddings.word_embeddings.weight"),
        "{err}"
    );
}
