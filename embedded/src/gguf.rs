//! Checks a GGUF file's header and size before llama.cpp sees it.
//!
//! llama.cpp trusts much of what a GGUF header says: a damaged or truncated file can make it
//! allocate absurd amounts of memory or, in some versions, abort the whole process. Reading the
//! header here first — with every count and length bounded by the file's real size — turns
//! those cases into ordinary errors, and tells a truncated download apart from a file that was
//! never a model at all.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// The four bytes every GGUF file starts with.
const MAGIC: [u8; 4] = *b"GGUF";
/// ggml's limit on tensor dimensions.
const MAX_DIMS: u32 = 4;
/// Alignment of the tensor data section when the file does not set `general.alignment`.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Longest metadata key or string value accepted (the tokenizer's chat template and merges
/// are the longest real strings, far below this).
const MAX_STRING: u64 = 64 * 1024 * 1024;

/// What a successful header check learned about the file.
#[derive(Debug, Clone)]
pub(crate) struct GgufInfo {
    /// Format version (2 or 3).
    pub version: u32,
    /// Number of tensors the header lists.
    pub tensor_count: u64,
    /// `general.architecture`, when present.
    pub architecture: Option<String>,
    /// Size of the file on disk.
    pub file_size: u64,
    /// Bytes the header says the file must have (end of the last tensor's data).
    pub required_size: u64,
}

/// Why a file did not pass the header check.
#[derive(Debug)]
pub(crate) enum GgufError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// The file does not start with the GGUF magic.
    NotGguf(String),
    /// The file is shorter than its header says.
    Truncated { size: u64, detail: String },
    /// The header is inconsistent.
    Corrupt(String),
}

/// A reader that knows its position and the file's size, so every length read from the
/// header can be checked against the bytes that are really there.
struct Cursor {
    inner: BufReader<File>,
    pos: u64,
    size: u64,
}

impl Cursor {
    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn need(&self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                size: self.size,
                detail: format!(
                    "the file ends inside its header, while reading {what} at byte {}",
                    self.pos
                ),
            });
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(GgufError::Io)?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes::<4>(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes::<8>(what)?))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        self.need(n, what)?;
        let offset = i64::try_from(n)
            .map_err(|_| GgufError::Corrupt(format!("{what}: length {n} is out of range")))?;
        self.inner.seek_relative(offset).map_err(GgufError::Io)?;
        self.pos += n;
        Ok(())
    }

    fn string_len(&mut self, what: &str) -> Result<u64, GgufError> {
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(GgufError::Corrupt(format!(
                "{what} claims a length of {len} bytes"
            )));
        }
        self.need(len, what)?;
        Ok(len)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.string_len(what)?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.inner.read_exact(&mut buf).map_err(GgufError::Io)?;
        self.pos += len;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn skip_string(&mut self, what: &str) -> Result<(), GgufError> {
        let len = self.string_len(what)?;
        self.skip(len, what)
    }
}

/// Metadata value types of the GGUF format.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

/// Block size (elements) and bytes per block of the ggml tensor types, for the size check.
/// Types not listed are accepted but only their offsets are checked.
fn type_layout(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),     // F32
        1 => (1, 2),     // F16
        2 => (32, 18),   // Q4_0
        3 => (32, 20),   // Q4_1
        6 => (32, 22),   // Q5_0
        7 => (32, 24),   // Q5_1
        8 => (32, 34),   // Q8_0
        9 => (32, 36),   // Q8_1
        10 => (256, 84), // Q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66), // IQ2_XXS
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18), // IQ4_NL
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1), // I8
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),    // F64
        29 => (256, 56), // IQ1_M
        30 => (1, 2),    // BF16
        34 => (256, 54), // TQ1_0
        35 => (256, 66), // TQ2_0
        39 => (32, 17),  // MXFP4
        _ => return None,
    })
}

/// Reads the header of the GGUF file at `path` and checks that the file holds all the tensor
/// data the header describes.
pub(crate) fn inspect(path: &Path) -> Result<GgufInfo, GgufError> {
    let file = File::open(path).map_err(GgufError::Io)?;
    let size = file.metadata().map_err(GgufError::Io)?.len();
    let mut cur = Cursor {
        inner: BufReader::with_capacity(256 * 1024, file),
        pos: 0,
        size,
    };

    if size < 4 {
        return Err(GgufError::NotGguf(format!(
            "the file has only {size} bytes"
        )));
    }
    let magic = cur.bytes::<4>("the magic")?;
    if magic != MAGIC {
        return Err(GgufError::NotGguf(format!(
            "it starts with {magic:02x?} instead of the GGUF magic"
        )));
    }
    let version = cur.u32("the version")?;
    if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
        return Err(GgufError::Corrupt(
            "it is a big-endian GGUF, which this build cannot read".into(),
        ));
    }
    if !(2..=3).contains(&version) {
        return Err(GgufError::Corrupt(format!(
            "unsupported GGUF version {version} (2 and 3 are supported)"
        )));
    }
    let tensor_count = cur.u64("the tensor count")?;
    let kv_count = cur.u64("the metadata count")?;
    // Every entry takes more than 8 bytes, so a count beyond the file's size is a lie.
    if tensor_count > size / 8 || kv_count > size / 8 {
        return Err(GgufError::Corrupt(format!(
            "the header claims {tensor_count} tensors and {kv_count} metadata entries, \
             more than a {size}-byte file can hold"
        )));
    }

    let mut alignment = DEFAULT_ALIGNMENT;
    let mut architecture = None;
    for i in 0..kv_count {
        let key = cur.string(&format!("metadata key #{i}"))?;
        let ty = cur.u32(&format!("the type of `{key}`"))?;
        match ty {
            T_STRING if key == "general.architecture" => {
                architecture = Some(cur.string(&format!("the value of `{key}`"))?);
            }
            T_STRING => cur.skip_string(&format!("the value of `{key}`"))?,
            T_U32 if key == "general.alignment" => {
                let a = cur.u32(&format!("the value of `{key}`"))?;
                if a == 0 || !a.is_power_of_two() {
                    return Err(GgufError::Corrupt(format!(
                        "general.alignment is {a}, not a power of two"
                    )));
                }
                alignment = u64::from(a);
            }
            T_ARRAY => {
                let what = format!("the array `{key}`");
                let elem = cur.u32(&what)?;
                let n = cur.u64(&what)?;
                if n > cur.remaining() {
                    return Err(GgufError::Truncated {
                        size,
                        detail: format!("{what} claims {n} elements past the end of the file"),
                    });
                }
                if elem == T_STRING {
                    for _ in 0..n {
                        cur.skip_string(&what)?;
                    }
                } else if let Some(s) = scalar_size(elem) {
                    cur.skip(n.saturating_mul(s), &what)?;
                } else {
                    return Err(GgufError::Corrupt(format!(
                        "{what} has elements of unknown type {elem}"
                    )));
                }
            }
            other => match scalar_size(other) {
                Some(s) => cur.skip(s, &format!("the value of `{key}`"))?,
                None => {
                    return Err(GgufError::Corrupt(format!(
                        "metadata `{key}` has unknown type {other}"
                    )));
                }
            },
        }
    }

    // Tensor infos: the end of the furthest tensor bounds the file's required size.
    let mut data_end: u64 = 0;
    for i in 0..tensor_count {
        let name = cur.string(&format!("the name of tensor #{i}"))?;
        let n_dims = cur.u32(&format!("the shape of tensor `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::Corrupt(format!(
                "tensor `{name}` claims {n_dims} dimensions"
            )));
        }
        let mut elements: u64 = 1;
        let mut row: u64 = 1;
        for d in 0..n_dims {
            let ne = cur.u64(&format!("the shape of tensor `{name}`"))?;
            if d == 0 {
                row = ne;
            }
            elements = elements.checked_mul(ne).ok_or_else(|| {
                GgufError::Corrupt(format!("tensor `{name}` has an impossible shape"))
            })?;
        }
        let ty = cur.u32(&format!("the type of tensor `{name}`"))?;
        let offset = cur.u64(&format!("the offset of tensor `{name}`"))?;
        let bytes = match type_layout(ty) {
            Some((block, block_bytes)) => {
                if !row.is_multiple_of(block) {
                    return Err(GgufError::Corrupt(format!(
                        "tensor `{name}` has rows of {row} elements, not a multiple of its \
                         block size {block}"
                    )));
                }
                (elements / block).checked_mul(block_bytes).ok_or_else(|| {
                    GgufError::Corrupt(format!("tensor `{name}` has an impossible size"))
                })?
            }
            None => 0,
        };
        let end = offset.checked_add(bytes).ok_or_else(|| {
            GgufError::Corrupt(format!("tensor `{name}` has an impossible offset"))
        })?;
        data_end = data_end.max(end);
    }

    let data_start = cur.pos.div_ceil(alignment).saturating_mul(alignment);
    let required_size = data_start.saturating_add(data_end);
    if required_size > size {
        return Err(GgufError::Truncated {
            size,
            detail: format!("its header describes {required_size} bytes"),
        });
    }

    Ok(GgufInfo {
        version,
        tensor_count,
        architecture,
        file_size: size,
        required_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sb-gguf-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("f.gguf");
        let mut f = File::create(&path).expect("create");
        f.write_all(bytes).expect("write");
        path
    }

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&tensors.to_le_bytes());
        v.extend_from_slice(&kvs.to_le_bytes());
        v
    }

    fn push_str(v: &mut Vec<u8>, s: &str) {
        v.extend_from_slice(&(s.len() as u64).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn rejects_wrong_magic() {
        let p = write_temp("magic", b"hello world, not a model");
        assert!(matches!(inspect(&p), Err(GgufError::NotGguf(_))));
    }

    #[test]
    fn rejects_absurd_counts() {
        let p = write_temp("counts", &header(3, u64::MAX / 2, 1));
        assert!(matches!(inspect(&p), Err(GgufError::Corrupt(_))));
    }

    #[test]
    fn rejects_unknown_version() {
        let p = write_temp("version", &header(7, 0, 0));
        assert!(matches!(inspect(&p), Err(GgufError::Corrupt(_))));
    }

    #[test]
    fn detects_missing_tensor_data() {
        let mut v = header(3, 1, 1);
        push_str(&mut v, "general.architecture");
        v.extend_from_slice(&T_STRING.to_le_bytes());
        push_str(&mut v, "llama");
        push_str(&mut v, "w");
        v.extend_from_slice(&2u32.to_le_bytes());
        v.extend_from_slice(&64u64.to_le_bytes());
        v.extend_from_slice(&2u64.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes()); // F32: 512 bytes
        v.extend_from_slice(&0u64.to_le_bytes());
        let complete_header = v.len().div_ceil(32) * 32;
        v.resize(complete_header + 100, 0);
        let p = write_temp("short", &v);
        assert!(matches!(inspect(&p), Err(GgufError::Truncated { .. })));

        v.resize(complete_header + 512, 0);
        let p = write_temp("full", &v);
        let info = inspect(&p).expect("complete file passes");
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.required_size, info.file_size);
    }

    #[test]
    fn detects_truncated_header() {
        let mut v = header(3, 0, 1);
        push_str(&mut v, "general.name");
        v.extend_from_slice(&T_STRING.to_le_bytes());
        v.extend_from_slice(&1000u64.to_le_bytes());
        v.extend_from_slice(b"short");
        let p = write_temp("header", &v);
        assert!(matches!(inspect(&p), Err(GgufError::Truncated { .. })));
    }
}
