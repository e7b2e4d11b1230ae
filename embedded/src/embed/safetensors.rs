//! Reads F32 tensors out of a `.safetensors` file, the format the model's weights ship in: an
//! 8-byte little-endian header length, a JSON header naming each tensor's type, shape and byte
//! range, then the raw little-endian data.
//!
//! The header is checked in full before any tensor is read (every range inside the file, every
//! size matching its shape), so a damaged or cut-short file fails with a message rather than
//! with garbage weights. Tensors are read one at a time into their own vectors: the weights are
//! used from memory, so there is no need to keep (or map) the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::EmbedError;

/// Largest header accepted: the real one is 11 KB; anything near this is not a weights file.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// One tensor's entry in the header.
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    /// Byte range within the data section.
    start: u64,
    end: u64,
}

/// An open safetensors file whose header has been checked.
pub(crate) struct SafeTensors {
    path: PathBuf,
    file: File,
    /// Offset of the data section from the start of the file.
    data_start: u64,
    entries: HashMap<String, Entry>,
}

impl SafeTensors {
    /// Opens `path` and checks its header.
    pub(crate) fn open(path: &Path) -> Result<Self, EmbedError> {
        let io_err = |e| EmbedError::read(path.to_path_buf(), e);
        let bad = |detail: String| EmbedError::BadHeader {
            path: path.to_path_buf(),
            detail,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        if file_len < 8 {
            return Err(bad(format!("the file has only {file_len} bytes")));
        }
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes).map_err(io_err)?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
            return Err(bad(format!(
                "the header claims {header_len} bytes in a file of {file_len}"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(io_err)?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        let entries = parse_header(&header, data_len).map_err(bad)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            data_start,
            entries,
        })
    }

    /// Reads the F32 tensor `name`, which must have exactly `shape`; returns its elements in
    /// row-major order.
    pub(crate) fn f32(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| EmbedError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        if entry.dtype != "F32" || entry.shape != shape {
            return Err(EmbedError::WrongShape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: format!("F32 {shape:?}"),
                actual: format!("{} {:?}", entry.dtype, entry.shape),
            });
        }
        // `parse_header` proved the range lies in the file and matches the shape.
        let mut bytes = vec![0u8; (entry.end - entry.start) as usize];
        let io_err = |e| EmbedError::read(self.path.clone(), e);
        self.file
            .seek(SeekFrom::Start(self.data_start + entry.start))
            .map_err(io_err)?;
        self.file.read_exact(&mut bytes).map_err(io_err)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// Parses and checks the JSON header against a data section of `data_len` bytes.
fn parse_header(header: &[u8], data_len: u64) -> Result<HashMap<String, Entry>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| format!("the header is not JSON ({e})"))?;
    let object = json.as_object().ok_or("the header is not a JSON object")?;
    let mut entries = HashMap::with_capacity(object.len());
    for (name, value) in object {
        if name == "__metadata__" {
            continue;
        }
        let entry = parse_entry(value).map_err(|e| format!("tensor `{name}`: {e}"))?;
        if entry.end > data_len {
            return Err(format!(
                "tensor `{name}` ends at byte {} of a data section of {data_len}: the file is cut short",
                entry.end
            ));
        }
        entries.insert(name.clone(), entry);
    }
    Ok(entries)
}

fn parse_entry(value: &serde_json::Value) -> Result<Entry, String> {
    let dtype = value
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or("no `dtype`")?
        .to_string();
    let shape = value
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or("no `shape`")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or("`shape` is not a list of sizes")?;
    let offsets = value
        .get("data_offsets")
        .and_then(|o| o.as_array())
        .filter(|o| o.len() == 2)
        .ok_or("no `data_offsets` pair")?;
    let (Some(start), Some(end)) = (offsets[0].as_u64(), offsets[1].as_u64()) else {
        return Err("`data_offsets` are not byte offsets".into());
    };
    if end < start {
        return Err(format!("`data_offsets` [{start}, {end}] run backwards"));
    }
    let element_bytes: u64 = match dtype.as_str() {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" => 1,
        // An unknown type is only an error if the tensor is asked for (as a wrong type).
        _ => {
            return Ok(Entry {
                dtype,
                shape,
                start,
                end,
            });
        }
    };
    let expected = shape
        .iter()
        .try_fold(element_bytes, |acc, &d| acc.checked_mul(d as u64));
    if expected != Some(end - start) {
        return Err(format!(
            "{dtype} {shape:?} needs {} bytes but `data_offsets` span {}",
            expected.map_or_else(|| "too many".to_string(), |b| b.to_string()),
            end - start
        ));
    }
    Ok(Entry {
        dtype,
        shape,
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A scratch directory of its own for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("switchboard-safetensors-{}-{n}", std::process::id());
            let path = std::env::temp_dir().join(name);
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create scratch dir");
            Self(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A safetensors file of `header` and `data`, in a scratch directory.
    fn file_with(header: &str, data: &[u8]) -> (Scratch, PathBuf) {
        let dir = Scratch::new();
        let path = dir.0.join("model.safetensors");
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(&path, bytes).expect("write test file");
        (dir, path)
    }

    #[test]
    fn reads_a_tensor_and_checks_its_shape() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.5]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let (_dir, path) = file_with(
            r#"{"__metadata__":{"format":"pt"},"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
            &data,
        );
        let mut st = SafeTensors::open(&path).expect("opens");
        assert_eq!(st.f32("t", &[2, 2]).expect("reads"), [1.0, 2.0, 3.0, 4.5]);
        assert!(matches!(
            st.f32("t", &[4]),
            Err(EmbedError::WrongShape { .. })
        ));
        let err = st.f32("u", &[4]).expect_err("no such tensor");
        assert!(err.to_string().contains("`u`"), "{err}");
    }

    #[test]
    fn rejects_a_cut_short_file() {
        let (_dir, path) = file_with(
            r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &[0u8; 8],
        );
        let err = SafeTensors::open(&path).err().expect("cut short");
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    #[test]
    fn rejects_a_size_that_disagrees_with_the_shape() {
        let (_dir, path) = file_with(
            r#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#,
            &[0u8; 16],
        );
        assert!(matches!(
            SafeTensors::open(&path),
            Err(EmbedError::BadHeader { .. })
        ));
    }

    #[test]
    fn rejects_a_header_longer_than_the_file() {
        let dir = Scratch::new();
        let path = dir.0.join("model.safetensors");
        std::fs::write(&path, 1000u64.to_le_bytes()).expect("write");
        assert!(matches!(
            SafeTensors::open(&path),
            Err(EmbedError::BadHeader { .. })
        ));
        let missing = dir.0.join("nothing.safetensors");
        assert!(matches!(
            SafeTensors::open(&missing),
            Err(EmbedError::MissingFile { .. })
        ));
    }
}
