//! Secrets and configs on this host: written to a tmpfs (never a disk) that the engine
//! sees at the same path, `/dev/shm/drover/<host id>/<container>/`, and bind-mounted
//! read-only into their container; removed with the container. A host without such a
//! tmpfs runs no container that has secrets.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use proto::DesiredContainer;

/// `statfs` type of a tmpfs.
const TMPFS_MAGIC: u64 = 0x0102_1994;

pub struct Files {
    root: PathBuf,
}

impl Files {
    pub fn new(host_id: &str) -> Files {
        Files {
            root: PathBuf::from("/dev/shm/drover").join(host_id),
        }
    }

    fn dir(&self, container: &str) -> PathBuf {
        self.root.join(container)
    }

    /// Writes `c`'s files and sets its binds. No files: nothing to do.
    pub fn place(&self, c: &mut DesiredContainer) -> Result<(), String> {
        if c.files.is_empty() {
            return Ok(());
        }
        let parent = self.root.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(&self.root).map_err(|e| format!("{}: {e}", self.root.display()))?;
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700));
        let fs =
            rustix::fs::statfs(&self.root).map_err(|e| format!("{}: {e}", self.root.display()))?;
        #[allow(clippy::unnecessary_cast)]
        if fs.f_type as u64 != TMPFS_MAGIC {
            return Err(format!(
                "{} is not on a tmpfs: secrets are never written to a disk",
                self.root.display()
            ));
        }
        let dir = self.dir(&c.name);
        self.clear(&c.name);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let mut binds = Vec::new();
        for (i, f) in c.files.iter().enumerate() {
            let path = dir.join(i.to_string());
            let number = |id: &Option<String>, what: &str| -> Result<Option<u32>, String> {
                id.as_deref()
                    .map(|v| {
                        v.parse::<u32>()
                            .map_err(|_| format!("{}: {what} '{v}' is not a number", f.path))
                    })
                    .transpose()
            };
            let (uid, gid) = (number(&f.uid, "uid")?, number(&f.gid, "gid")?);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("{}: {e}", f.path))?;
            file.write_all(&f.data)
                .map_err(|e| format!("{}: {e}", f.path))?;
            drop(file);
            std::os::unix::fs::chown(&path, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))
                .map_err(|e| format!("{}: {e}", f.path))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
                .map_err(|e| format!("{}: {e}", f.path))?;
            binds.push(format!("{}:{}:ro", path.display(), f.path));
        }
        c.file_binds = binds;
        Ok(())
    }

    /// Removes the files of container `name`, if any.
    pub fn clear(&self, name: &str) {
        let _ = std::fs::remove_dir_all(self.dir(name));
    }
}
