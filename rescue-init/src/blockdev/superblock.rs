//! Filesystem identification from the first bytes of a device (pure, bounds-checked).
//!
//! ```text
//! offset  fs       what
//! 0       xfs      "XFSB", uuid @32 (16 B), label @108 (12 B)
//! 0       vfat     boot sector: 0x55AA @510; FAT12/16 type @54, id @39, label @43;
//!                  FAT32 type @82, id @67, label @71
//! 1024    ext2/3/4 superblock: magic 0xEF53 @56, uuid @104, label @120, features @92/96/100
//! 32768   iso9660  primary volume descriptor: 1 "CD001", label @40 (32 B), created @813
//! ```
//! `PROBE_LEN` bytes are enough for all of them.

/// Bytes to read from the start of a device before probing.
pub const PROBE_LEN: usize = 64 * 1024;

/// What a superblock says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FsInfo {
    /// Kernel filesystem type to mount with (ext2/ext3/ext4, xfs, vfat, iso9660).
    pub fstype: String,
    pub label: Option<String>,
    /// In blkid's format (lowercase dashed for ext/xfs, XXXX-XXXX for vfat, a date for iso).
    pub uuid: Option<String>,
}

fn slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    slice(b, off, 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    slice(b, off, 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Format 16 bytes as a dashed UUID in byte order (ext4 and xfs store it big-endian).
pub fn uuid_be(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A text label: stops at NUL, trims trailing spaces, None when empty.
fn label(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim_end().to_owned();
    (!s.is_empty()).then_some(s)
}

fn probe_ext(b: &[u8]) -> Option<FsInfo> {
    const SB: usize = 1024;
    if le16(b, SB + 56)? != 0xEF53 {
        return None;
    }
    let compat = le32(b, SB + 92)?;
    let incompat = le32(b, SB + 96)?;
    let ro_compat = le32(b, SB + 100)?;
    // ext4-only features: extents, 64bit, flex_bg, mmp, meta_bg csum…; huge_file, dir_nlink,
    // extra_isize, metadata_csum (ro_compat).
    let ext4 = incompat & (0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x1000 | 0x2000 | 0x8000) != 0
        || ro_compat & (0x8 | 0x20 | 0x40 | 0x400) != 0;
    let fstype = if ext4 {
        "ext4"
    } else if compat & 0x4 != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Some(FsInfo {
        fstype: fstype.to_owned(),
        label: label(slice(b, SB + 120, 16)?),
        uuid: Some(uuid_be(slice(b, SB + 104, 16)?)),
    })
}

fn probe_xfs(b: &[u8]) -> Option<FsInfo> {
    if slice(b, 0, 4)? != b"XFSB" {
        return None;
    }
    Some(FsInfo {
        fstype: "xfs".to_owned(),
        label: label(slice(b, 108, 12)?),
        uuid: Some(uuid_be(slice(b, 32, 16)?)),
    })
}

fn probe_vfat(b: &[u8]) -> Option<FsInfo> {
    if slice(b, 510, 2)? != [0x55, 0xAA] {
        return None;
    }
    let sector = le16(b, 11)?;
    if !matches!(sector, 512 | 1024 | 2048 | 4096) || b.get(13).is_none_or(|&s| s == 0) {
        return None;
    }
    let (id_off, label_off) = if slice(b, 82, 5)? == b"FAT32" {
        (67, 71)
    } else if matches!(slice(b, 54, 5)?, b"FAT12" | b"FAT16" | b"FAT  ") {
        (39, 43)
    } else {
        return None;
    };
    let id = le32(b, id_off)?;
    let lbl = label(slice(b, label_off, 11)?).filter(|l| l != "NO NAME");
    Some(FsInfo {
        fstype: "vfat".to_owned(),
        label: lbl,
        uuid: Some(format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF)),
    })
}

fn probe_iso9660(b: &[u8]) -> Option<FsInfo> {
    const PVD: usize = 32768;
    if *b.get(PVD)? != 1 || slice(b, PVD + 1, 5)? != b"CD001" {
        return None;
    }
    let d = slice(b, PVD + 813, 16)?;
    let uuid = d.iter().all(u8::is_ascii_digit).then(|| {
        let s = String::from_utf8_lossy(d);
        format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[8..10],
            &s[10..12],
            &s[12..14],
            &s[14..16]
        )
    });
    Some(FsInfo {
        fstype: "iso9660".to_owned(),
        label: label(slice(b, PVD + 40, 32)?),
        uuid,
    })
}

/// Identify the filesystem whose first bytes are `head` (give it `PROBE_LEN` bytes when the
/// device is that large). None for unknown content or a partition table.
pub fn probe(head: &[u8]) -> Option<FsInfo> {
    probe_ext(head)
        .or_else(|| probe_xfs(head))
        .or_else(|| probe_iso9660(head))
        .or_else(|| probe_vfat(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_zero_and_short_input_are_not_filesystems() {
        assert_eq!(probe(&[]), None);
        assert_eq!(probe(&[0u8; 100]), None);
        assert_eq!(probe(&vec![0xffu8; PROBE_LEN]), None);
        // An MBR boot signature alone is not a FAT boot sector.
        let mut mbr = vec![0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        assert_eq!(probe(&mbr), None);
    }

    #[test]
    fn uuid_formatting() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid_be(&b), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }
}
