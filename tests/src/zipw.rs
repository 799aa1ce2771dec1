//! A minimal zip writer for building test archives, honest or hostile (names are written as
//! given, sizes and CRCs can lie). Stored and deflate members, Unix modes, no zip64.

use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};

/// One member to write.
#[derive(Debug, Clone)]
pub struct ZipEntry {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    pub deflate: bool,
    /// Full `st_mode` (type bits included), stored as the Unix external attributes.
    pub mode: u32,
    /// Declared uncompressed size instead of the real one.
    pub lie_size: Option<u32>,
    /// Declared CRC-32 instead of the real one.
    pub lie_crc: Option<u32>,
}

impl ZipEntry {
    /// A regular file, deflated, mode 0644.
    pub fn file(name: &str, data: &[u8]) -> Self {
        ZipEntry {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            deflate: true,
            mode: 0o100644,
            lie_size: None,
            lie_crc: None,
        }
    }
    /// A symlink whose target is stored as data.
    pub fn symlink(name: &str, target: &str) -> Self {
        ZipEntry {
            mode: 0o120777,
            deflate: false,
            ..ZipEntry::file(name, target.as_bytes())
        }
    }
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

fn le16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Builds a zip archive in memory.
pub fn build(entries: &[ZipEntry]) -> std::io::Result<Vec<u8>> {
    build_with(entries, false)
}

fn le64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Builds a zip archive; with `zip64`, sizes and offsets go in zip64 extra fields and the
/// end of central directory is the zip64 one (as Go's archive/zip writes for large members).
pub fn build_with(entries: &[ZipEntry], zip64: bool) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let mut crc = Crc::new();
        crc.update(&e.data);
        let body = if e.deflate {
            let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&e.data)?;
            enc.finish()?
        } else {
            e.data.clone()
        };
        let method: u16 = if e.deflate { 8 } else { 0 };
        let crc = e.lie_crc.unwrap_or(crc.sum());
        let size = e
            .lie_size
            .unwrap_or(u32::try_from(e.data.len()).map_err(std::io::Error::other)?);
        let csize = u32::try_from(body.len()).map_err(std::io::Error::other)?;
        let name_len = u16::try_from(e.name.len()).map_err(std::io::Error::other)?;
        let offset = u32::try_from(out.len()).map_err(std::io::Error::other)?;
        // local header
        le32(&mut out, 0x0403_4b50);
        le16(&mut out, 20);
        le16(&mut out, 0);
        le16(&mut out, method);
        le16(&mut out, 0);
        le16(&mut out, 0x21);
        le32(&mut out, crc);
        le32(&mut out, csize);
        le32(&mut out, size);
        le16(&mut out, name_len);
        le16(&mut out, 0);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&body);
        // central directory entry
        le32(&mut central, 0x0201_4b50);
        le16(&mut central, (3 << 8) | 20); // made by Unix
        le16(&mut central, 20);
        le16(&mut central, 0);
        le16(&mut central, method);
        le16(&mut central, 0);
        le16(&mut central, 0x21);
        le32(&mut central, crc);
        let sat = |x: u32| if zip64 { u32::MAX } else { x };
        le32(&mut central, sat(csize));
        le32(&mut central, sat(size));
        le16(&mut central, name_len);
        le16(&mut central, if zip64 { 28 } else { 0 });
        le16(&mut central, 0);
        le16(&mut central, 0);
        le16(&mut central, 0);
        le32(&mut central, e.mode << 16);
        le32(&mut central, sat(offset));
        central.extend_from_slice(&e.name);
        if zip64 {
            le16(&mut central, 0x0001);
            le16(&mut central, 24);
            le64(&mut central, u64::from(size));
            le64(&mut central, u64::from(csize));
            le64(&mut central, u64::from(offset));
        }
    }
    let cd_offset = u32::try_from(out.len()).map_err(std::io::Error::other)?;
    let cd_size = u32::try_from(central.len()).map_err(std::io::Error::other)?;
    let count = u16::try_from(entries.len()).map_err(std::io::Error::other)?;
    out.extend_from_slice(&central);
    if zip64 {
        let rec_at = out.len() as u64;
        le32(&mut out, 0x0606_4b50);
        le64(&mut out, 44);
        le16(&mut out, 45);
        le16(&mut out, 45);
        le32(&mut out, 0);
        le32(&mut out, 0);
        le64(&mut out, u64::from(count));
        le64(&mut out, u64::from(count));
        le64(&mut out, u64::from(cd_size));
        le64(&mut out, u64::from(cd_offset));
        le32(&mut out, 0x0706_4b50);
        le32(&mut out, 0);
        le64(&mut out, rec_at);
        le32(&mut out, 1);
    }
    let (count16, size32, off32) = if zip64 {
        (u16::MAX, u32::MAX, u32::MAX)
    } else {
        (count, cd_size, cd_offset)
    };
    le32(&mut out, 0x0605_4b50);
    le16(&mut out, 0);
    le16(&mut out, 0);
    le16(&mut out, count16);
    le16(&mut out, count16);
    le32(&mut out, size32);
    le32(&mut out, off32);
    le16(&mut out, 0);
    Ok(out)
}
