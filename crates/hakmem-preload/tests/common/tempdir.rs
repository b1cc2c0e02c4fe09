//! A test's temporary directory, removed when dropped (kept if `HAKMEM_KEEP_TMP` is set; made
//! under `HAKMEM_TEST_TMP` if that is set). Shared by the crates' integration tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh temporary directory, removed on drop (kept if HAKMEM_KEEP_TMP is set).
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::var_os("HAKMEM_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let d = base.join(format!("hakmem-test-{}-{}-{}", tag, std::process::id(), n));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("HAKMEM_KEEP_TMP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
