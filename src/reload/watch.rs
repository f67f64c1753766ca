//! Watching config files the way they really change.
//!
//! Files change in three ways: written in place; written to a temporary file and
//! renamed over (editors, `kubectl cp`); and Kubernetes' ConfigMap update, where
//! `config.yaml` is a symlink to `..data/config.yaml` and kubelet atomically renames a
//! new `..data` symlink into place. The last never produces an event on the file itself,
//! and a watch on the file's inode dies at the first rename. So weir watches the
//! *directories* holding the files (and, when a path is a symlink, the directory of its
//! current target too), treats any event there as a hint, and lets the reload compare
//! content hashes to decide whether anything changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// Watches the directories of a set of files and sends `()` on any change there.
pub struct DirWatcher {
    watcher: RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("dirs", &self.dirs)
            .finish()
    }
}

impl DirWatcher {
    pub fn new(changed: UnboundedSender<()>) -> notify::Result<Self> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                // Opening or reading a file changes nothing, and weir's own reads of the
                // config would otherwise wake it up again. A close after writing does
                // matter: it is the end of an in-place write.
                Ok(e) => match e.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                    EventKind::Access(_) => false,
                    _ => true,
                },
                // An overflowed queue may have lost events: check.
                Err(_) => true,
            };
            if relevant {
                let _ = changed.send(());
            }
        })?;
        Ok(DirWatcher {
            watcher,
            dirs: BTreeSet::new(),
        })
    }

    /// Watches the directories of `files`, and of their symlink targets, now. Called
    /// again after every reload, since a ConfigMap swap moves the targets.
    pub fn watch_files(&mut self, files: &[PathBuf]) {
        let wanted: BTreeSet<PathBuf> = files.iter().flat_map(|f| dirs_of(f)).collect();
        for stale in self.dirs.difference(&wanted) {
            let _ = self.watcher.unwatch(stale);
        }
        for dir in wanted.difference(&self.dirs) {
            if let Err(error) = self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), %error, "cannot watch directory; changes are picked up by the periodic check");
            }
        }
        // Re-adding an existing watch is harmless, and re-arms one whose directory was
        // deleted and re-created.
        self.dirs = wanted;
    }
}

fn dirs_of(file: &Path) -> Vec<PathBuf> {
    let absolute = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| file.to_path_buf(), |cwd| cwd.join(file))
    };
    let mut dirs = Vec::new();
    if let Some(parent) = absolute.parent() {
        dirs.push(parent.to_path_buf());
    }
    if let Ok(target) = std::fs::canonicalize(&absolute)
        && let Some(parent) = target.parent()
    {
        dirs.push(parent.to_path_buf());
    }
    dirs
}
