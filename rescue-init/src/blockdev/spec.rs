//! Device specs as written on the kernel command line and in fstab: `LABEL=`, `UUID=`,
//! `PARTUUID=`, `/dev/<name>` and the udev `/dev/disk/by-*/` forms (pure).
use std::path::PathBuf;

use super::{BlockDevice, BlockdevError};

/// How a device is named.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum DeviceSpec {
    Label(String),
    Uuid(String),
    PartUuid(String),
    Path(PathBuf),
}

impl DeviceSpec {
    /// Parse a spec; by-label/by-uuid/by-partuuid links become the tag forms (there is no
    /// udev in the image to create them).
    pub fn parse(s: &str) -> Result<DeviceSpec, BlockdevError> {
        let bad = || BlockdevError::BadSpec { spec: s.to_owned() };
        let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_owned()).ok_or_else(bad);
        if let Some(v) = s.strip_prefix("LABEL=") {
            return Ok(DeviceSpec::Label(nonempty(v)?));
        }
        if let Some(v) = s.strip_prefix("UUID=") {
            return Ok(DeviceSpec::Uuid(nonempty(v)?));
        }
        if let Some(v) = s.strip_prefix("PARTUUID=") {
            return Ok(DeviceSpec::PartUuid(nonempty(v)?));
        }
        if let Some(v) = s.strip_prefix("/dev/disk/by-label/") {
            return Ok(DeviceSpec::Label(nonempty(v)?));
        }
        if let Some(v) = s.strip_prefix("/dev/disk/by-uuid/") {
            return Ok(DeviceSpec::Uuid(nonempty(v)?));
        }
        if let Some(v) = s.strip_prefix("/dev/disk/by-partuuid/") {
            return Ok(DeviceSpec::PartUuid(nonempty(v)?));
        }
        if let Some(v) = s.strip_prefix("/dev/") {
            if !v.is_empty() && !v.contains('/') {
                return Ok(DeviceSpec::Path(PathBuf::from(s)));
            }
        }
        Err(bad())
    }

    /// Whether `dev` is the device this spec names. UUIDs compare case-insensitively.
    pub fn matches(&self, dev: &BlockDevice) -> bool {
        match self {
            DeviceSpec::Label(l) => dev.fs.as_ref().and_then(|f| f.label.as_ref()) == Some(l),
            DeviceSpec::Uuid(u) => dev
                .fs
                .as_ref()
                .and_then(|f| f.uuid.as_ref())
                .is_some_and(|x| x.eq_ignore_ascii_case(u)),
            DeviceSpec::PartUuid(u) => dev
                .partuuid
                .as_ref()
                .is_some_and(|x| x.eq_ignore_ascii_case(u)),
            DeviceSpec::Path(p) => p
                .file_name()
                .is_some_and(|n| n.to_string_lossy() == dev.name),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Label(v) => write!(f, "LABEL={v}"),
            DeviceSpec::Uuid(v) => write!(f, "UUID={v}"),
            DeviceSpec::PartUuid(v) => write!(f, "PARTUUID={v}"),
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The device `spec` names among `devs`, preferring one with a filesystem.
pub fn find<'a>(spec: &DeviceSpec, devs: &'a [BlockDevice]) -> Option<&'a BlockDevice> {
    let mut hits = devs.iter().filter(|d| spec.matches(d));
    let first = hits.next()?;
    if first.fs.is_some() {
        return Some(first);
    }
    hits.find(|d| d.fs.is_some()).or(Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blockdev::FsInfo;

    fn dev(name: &str, label: Option<&str>, uuid: &str, partuuid: Option<&str>) -> BlockDevice {
        BlockDevice {
            name: name.to_owned(),
            dev_path: PathBuf::from(format!("/dev/{name}")),
            size_bytes: 1 << 20,
            partition: partuuid.map(|_| 1),
            parent: None,
            removable: false,
            read_only: false,
            fs: Some(FsInfo {
                fstype: "ext4".to_owned(),
                label: label.map(str::to_owned),
                uuid: Some(uuid.to_owned()),
            }),
            partuuid: partuuid.map(str::to_owned),
            table: None,
            error: None,
        }
    }

    #[test]
    fn specs_parse_and_reject() {
        assert_eq!(
            DeviceSpec::parse("LABEL=root").expect("test step"),
            DeviceSpec::Label("root".into())
        );
        assert_eq!(
            DeviceSpec::parse("/dev/disk/by-uuid/ab").expect("test step"),
            DeviceSpec::Uuid("ab".into())
        );
        assert_eq!(
            DeviceSpec::parse("/dev/vda2").expect("test step"),
            DeviceSpec::Path("/dev/vda2".into())
        );
        for bad in [
            "",
            "LABEL=",
            "root",
            "/dev/",
            "/dev/mapper/x/y",
            "PARTUUID=",
        ] {
            assert!(DeviceSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            DeviceSpec::parse("UUID=x").expect("test step").to_string(),
            "UUID=x"
        );
    }

    #[test]
    fn find_by_each_kind() {
        let devs = vec![
            dev("vda1", Some("boot"), "1111-2222", Some("abcd-01")),
            dev(
                "vda2",
                Some("root"),
                "0f0e0d0c-0000-0000-0000-000000000001",
                Some("abcd-02"),
            ),
        ];
        let find_name = |s: &str| {
            find(&DeviceSpec::parse(s).expect("test step"), &devs).map(|d| d.name.clone())
        };
        assert_eq!(find_name("LABEL=root").as_deref(), Some("vda2"));
        assert_eq!(
            find_name("UUID=0F0E0D0C-0000-0000-0000-000000000001").as_deref(),
            Some("vda2")
        );
        assert_eq!(find_name("PARTUUID=ABCD-01").as_deref(), Some("vda1"));
        assert_eq!(find_name("/dev/vda1").as_deref(), Some("vda1"));
        assert_eq!(find_name("LABEL=nope"), None);
    }
}
