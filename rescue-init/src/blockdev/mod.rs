//! Block devices without udev or blkid: the list comes from `<sys>/class/block`, the
//! filesystem type, LABEL and UUID from superblocks read here, and PARTUUID from the
//! partition tables. Read-only: nothing in this module writes to a device.
use std::io::Read;
use std::path::{Path, PathBuf};

pub mod fstab;
pub mod parttable;
pub mod spec;
pub mod superblock;

pub use spec::DeviceSpec;
pub use superblock::FsInfo;

/// Errors of block device discovery.
#[derive(Debug, thiserror::Error)]
pub enum BlockdevError {
    #[error("list block devices in {path}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid device spec {spec:?}: expected LABEL=, UUID=, PARTUUID= or /dev/…")]
    BadSpec { spec: String },
}

/// One block device (disk or partition) as seen at scan time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlockDevice {
    /// Kernel name (`vda`, `vda1`, `nvme0n1p2`).
    pub name: String,
    /// Node to open or mount (`/dev/<name>` in the image).
    pub dev_path: PathBuf,
    pub size_bytes: u64,
    /// Partition number when this is a partition.
    pub partition: Option<u32>,
    /// Whole-disk name for a partition.
    pub parent: Option<String>,
    pub removable: bool,
    pub read_only: bool,
    pub fs: Option<FsInfo>,
    pub partuuid: Option<String>,
    /// Partition table kind on a whole disk ("gpt", "dos").
    pub table: Option<String>,
    /// Why the device could not be read, if it could not.
    pub error: Option<String>,
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Read up to `PROBE_LEN` bytes from the start of a device node.
pub fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(superblock::PROBE_LEN);
    f.take(superblock::PROBE_LEN as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// List block devices from `<sys_root>/class/block` and probe each one through
/// `<dev_root>/<name>`. Devices of size 0 (empty drives, unused loop/ram) are left out.
pub fn scan(sys_root: &Path, dev_root: &Path) -> Result<Vec<BlockDevice>, BlockdevError> {
    let class = sys_root.join("class/block");
    let entries = std::fs::read_dir(&class).map_err(|source| BlockdevError::List {
        path: class.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut devs: Vec<BlockDevice> = Vec::new();
    // (disk name, partition number, PARTUUID) from the whole disks' tables.
    let mut parts: Vec<(String, u32, String)> = Vec::new();
    for name in names {
        let dir = class.join(&name);
        let sectors: u64 = read_trim(&dir.join("size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if sectors == 0 {
            continue;
        }
        let partition = read_trim(&dir.join("partition")).and_then(|s| s.parse().ok());
        // /sys/class/block/vda1 links to …/block/vda/vda1: the parent directory is the disk.
        let parent = partition.and_then(|_| {
            std::fs::canonicalize(&dir).ok().and_then(|p| {
                p.parent()
                    .and_then(|pp| pp.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
        });
        let dev_path = dev_root.join(&name);
        let mut dev = BlockDevice {
            name: name.clone(),
            dev_path: dev_path.clone(),
            size_bytes: sectors.saturating_mul(512),
            partition,
            parent,
            removable: read_trim(&dir.join("removable")).as_deref() == Some("1"),
            read_only: read_trim(&dir.join("ro")).as_deref() == Some("1"),
            fs: None,
            partuuid: None,
            table: None,
            error: None,
        };
        match read_head(&dev_path) {
            Ok(head) => {
                dev.fs = superblock::probe(&head);
                if partition.is_none() && dev.fs.is_none() {
                    if let Some(t) = parttable::parse(&head) {
                        dev.table = Some(t.kind.clone());
                        for p in t.partitions {
                            parts.push((name.clone(), p.number, p.partuuid));
                        }
                    }
                }
            }
            Err(e) => dev.error = Some(e.to_string()),
        }
        devs.push(dev);
    }
    for d in &mut devs {
        if let (Some(parent), Some(num)) = (&d.parent, d.partition) {
            d.partuuid = parts
                .iter()
                .find(|p| &p.0 == parent && p.1 == num)
                .map(|p| p.2.clone());
        }
    }
    Ok(devs)
}

#[cfg(test)]
mod tests;
