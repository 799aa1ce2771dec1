//! Partition tables (pure): MBR primary entries and GPT, for PARTUUID.
//!
//! ```text
//! MBR (LBA 0): disk signature u32 @440, 4 entries × 16 B @446 (type @4, first LBA @8,
//!              sectors @12), 0x55AA @510. Type 0xEE = protective MBR of a GPT disk.
//! GPT (LBA 1): "EFI PART", header size @12, header crc32 @16, disk GUID @56, entries LBA @72,
//!              entry count @80, entry size @84, entries crc32 @88.
//!   entry:     type GUID @0, unique GUID @16, first LBA @32, last LBA @40, name @56 (UTF-16LE)
//! ```
//! PARTUUID is the entry's unique GUID (GPT) or `<signature>-<nn>` (MBR), as blkid prints it.

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Partition {
    /// 1-based number, as in `/sys/class/block/<dev>/partition`.
    pub number: u32,
    pub partuuid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: Option<String>,
}

/// A parsed table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Table {
    /// "gpt" or "dos".
    pub kind: String,
    pub disk_id: String,
    pub partitions: Vec<Partition>,
}

fn slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}
fn le32(b: &[u8], off: usize) -> Option<u32> {
    slice(b, off, 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn le64(b: &[u8], off: usize) -> Option<u64> {
    let s = slice(b, off, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// CRC-32 (IEEE 802.3, reflected), as used by GPT.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A GUID in its on-disk mixed-endian form, as text.
pub fn guid(b: &[u8]) -> Option<String> {
    let b = slice(b, 0, 16)?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

fn parse_gpt(disk: &[u8], sector: usize) -> Option<Table> {
    let h = slice(disk, sector, 92)?;
    if &h[0..8] != b"EFI PART" {
        return None;
    }
    let hsize = usize::try_from(le32(h, 12)?).ok()?;
    let hdr = slice(disk, sector, hsize.clamp(92, sector))?;
    let mut zeroed = hdr.to_vec();
    zeroed[16..20].fill(0);
    if crc32(&zeroed) != le32(h, 16)? {
        return None;
    }
    let entries_lba = usize::try_from(le64(h, 72)?).ok()?;
    let count = usize::try_from(le32(h, 80)?).ok()?.min(1024);
    let esize = usize::try_from(le32(h, 84)?).ok()?;
    if esize < 128 {
        return None;
    }
    let table = slice(
        disk,
        entries_lba.checked_mul(sector)?,
        count.checked_mul(esize)?,
    )?;
    if crc32(table) != le32(h, 88)? {
        return None;
    }
    let mut parts = Vec::new();
    for i in 0..count {
        let e = &table[i * esize..(i + 1) * esize];
        if e[0..16].iter().all(|&x| x == 0) {
            continue;
        }
        let name_units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let name = String::from_utf16_lossy(&name_units);
        parts.push(Partition {
            number: u32::try_from(i + 1).ok()?,
            partuuid: guid(&e[16..32])?,
            first_lba: le64(e, 32)?,
            last_lba: le64(e, 40)?,
            name: (!name.is_empty()).then_some(name),
        });
    }
    Some(Table {
        kind: "gpt".to_owned(),
        disk_id: guid(slice(h, 56, 16)?)?,
        partitions: parts,
    })
}

/// Parse the partition table at the start of `disk` (give it the first 64 KiB at least for
/// GPT: header and a 128-entry array end at 17 KiB with 512-byte sectors).
pub fn parse(disk: &[u8]) -> Option<Table> {
    if slice(disk, 510, 2)? != [0x55, 0xAA] {
        return None;
    }
    let entries: Vec<&[u8]> = (0..4)
        .filter_map(|i| slice(disk, 446 + 16 * i, 16))
        .collect();
    if entries.iter().any(|e| e[4] == 0xEE) {
        return parse_gpt(disk, 512).or_else(|| parse_gpt(disk, 4096));
    }
    // Boot flags must be 0x00 or 0x80, or this is a FAT/boot sector, not an MBR.
    if entries.iter().any(|e| e[0] != 0 && e[0] != 0x80) {
        return None;
    }
    let sig = le32(disk, 440)?;
    let mut parts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let first = le32(e, 8)?;
        let count = le32(e, 12)?;
        if e[4] == 0 || count == 0 {
            continue;
        }
        let number = u32::try_from(i + 1).ok()?;
        parts.push(Partition {
            number,
            partuuid: format!("{sig:08x}-{number:02x}"),
            first_lba: u64::from(first),
            last_lba: u64::from(first) + u64::from(count) - 1,
            name: None,
        });
    }
    if parts.is_empty() {
        return None;
    }
    Some(Table {
        kind: "dos".to_owned(),
        disk_id: format!("{sig:08x}"),
        partitions: parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn hand_built_mbr() {
        let mut d = vec![0u8; 1024];
        d[440..444].copy_from_slice(&0x1234_abcdu32.to_le_bytes());
        d[446 + 4] = 0x83;
        d[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        d[446 + 12..446 + 16].copy_from_slice(&4096u32.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        let t = parse(&d).expect("test step");
        assert_eq!(t.kind, "dos");
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.partitions[0].partuuid, "1234abcd-01");
        assert_eq!(t.partitions[0].last_lba, 2048 + 4096 - 1);
        // A corrupted boot flag means it is not an MBR.
        d[446] = 0x12;
        assert_eq!(parse(&d), None);
    }
}
