//! The one llama.cpp backend of the process, and where llama.cpp's log lines go.
//!
//! llama.cpp must be initialised once per process, and by default it prints hundreds of lines
//! to stderr while loading a model. This module initialises it lazily, exactly once, and routes
//! its log through `tracing` instead: loader chatter becomes `debug`, warnings and errors keep
//! their level. The last error line is also kept per thread, so that a failed load can say
//! *why* llama.cpp refused a file.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_sys_2::ggml_log_level;

/// The `tracing` target of llama.cpp's own log lines.
const LOG_TARGET: &str = "switchboard_embedded::llama_cpp";

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// Returns the process-wide llama.cpp backend, initialising it on first use.
pub(crate) fn get() -> Result<&'static LlamaBackend, String> {
    BACKEND
        .get_or_init(|| {
            install_log_hook();
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[derive(Default)]
struct LineBuffer {
    level: ggml_log_level,
    text: String,
    last_error: Option<String>,
}

thread_local! {
    static LINES: RefCell<LineBuffer> = RefCell::new(LineBuffer::default());
}

/// Takes (and clears) the last error line llama.cpp logged on this thread.
pub(crate) fn take_last_error() -> Option<String> {
    LINES.with(|cell| {
        cell.try_borrow_mut()
            .ok()
            .and_then(|mut b| b.last_error.take())
    })
}

fn install_log_hook() {
    // SAFETY: `on_log` matches `ggml_log_callback`, is a plain function that lives for the
    // whole process, and ignores the user-data pointer.
    unsafe { llama_cpp_sys_2::llama_log_set(Some(on_log), std::ptr::null_mut()) }
}

fn emit(level: ggml_log_level, line: &str, buf: &mut LineBuffer) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    match level {
        llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR => {
            tracing::error!(target: LOG_TARGET, "{line}");
            buf.last_error = Some(line.to_owned());
        }
        llama_cpp_sys_2::GGML_LOG_LEVEL_WARN => tracing::warn!(target: LOG_TARGET, "{line}"),
        llama_cpp_sys_2::GGML_LOG_LEVEL_INFO => tracing::debug!(target: LOG_TARGET, "{line}"),
        _ => tracing::trace!(target: LOG_TARGET, "{line}"),
    }
}

/// Receives llama.cpp's and ggml's log output. Lines may arrive in pieces (`CONT` level or no
/// trailing newline), so they are buffered per thread until complete.
unsafe extern "C" fn on_log(level: ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that is valid for this call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    // A panic must not unwind into C; a re-entrant call simply drops its text.
    let _ = std::panic::catch_unwind(|| {
        LINES.with(|cell| {
            let Ok(mut buf) = cell.try_borrow_mut() else {
                return;
            };
            let buf = &mut *buf;
            if level != llama_cpp_sys_2::GGML_LOG_LEVEL_CONT {
                if !buf.text.is_empty() {
                    let pending = std::mem::take(&mut buf.text);
                    emit(buf.level, &pending, buf);
                }
                buf.level = level;
            }
            buf.text.push_str(&text);
            while let Some(nl) = buf.text.find('\n') {
                let line: String = buf.text.drain(..=nl).collect();
                emit(buf.level, &line, buf);
            }
        });
    });
}
