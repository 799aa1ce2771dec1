//! A small read-only zip reader: central directory (with zip64), stored and deflate members,
//! size and CRC-32 checks. Written here rather than pulling the `zip` crate because we need only
//! these two methods, want every bound checked with our own typed errors (declared vs actual
//! size, overlapping members), and the init binary should stay small; `flate2` (already needed
//! for tar.gz) does the inflating and provides the CRC.
//!
//! Layout (APPNOTE.TXT 4.3): `[local header + data]* [central directory] [zip64 eocd]
//! [zip64 locator] [eocd]`. All integers little-endian.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use flate2::read::DeflateDecoder;
use flate2::Crc;

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const MAX_NAME: usize = 4096;

/// One member as described by the central directory.
#[derive(Debug, Clone)]
pub(crate) struct ZipMember {
    pub name: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub crc: u32,
    pub compressed: u64,
    pub size: u64,
    pub offset: u64,
    /// Unix `st_mode` when the archive was made on Unix and carries one.
    pub unix_mode: Option<u32>,
}

/// Problems found in the container structure; turned into `ArchiveError` by the caller.
#[derive(Debug)]
pub(crate) enum ZipProblem {
    Io(io::Error),
    Corrupt(String),
    Unsupported(String),
}

impl From<io::Error> for ZipProblem {
    fn from(e: io::Error) -> Self {
        ZipProblem::Io(e)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
}
fn corrupt(msg: &str) -> ZipProblem {
    ZipProblem::Corrupt(msg.to_string())
}

/// Reads the central directory. At most `max_entries` members are accepted.
pub(crate) fn read_directory(f: &mut File, max_entries: u64) -> Result<Vec<ZipMember>, ZipProblem> {
    let len = f.seek(SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65535);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; usize::try_from(tail_len).map_err(|_| corrupt("tail too large"))?];
    f.read_exact(&mut tail)?;
    let eocd_pos = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == Some(EOCD_SIG))
        .ok_or_else(|| corrupt("no end of central directory record"))?;
    let eocd = &tail[eocd_pos..];
    let disk = u16_at(eocd, 4).unwrap_or(0);
    let cd_disk = u16_at(eocd, 6).unwrap_or(0);
    let mut entries = u64::from(u16_at(eocd, 10).unwrap_or(0));
    let mut cd_size = u64::from(u32_at(eocd, 12).unwrap_or(0));
    let mut cd_offset = u64::from(u32_at(eocd, 16).unwrap_or(0));
    if disk != 0 || cd_disk != 0 {
        return Err(ZipProblem::Unsupported("multi-disk archive".into()));
    }
    if entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        // zip64: the locator sits just before the eocd record.
        let eocd_abs = len - tail_len + eocd_pos as u64;
        let loc_abs = eocd_abs
            .checked_sub(20)
            .ok_or_else(|| corrupt("zip64 locator missing"))?;
        let mut loc = [0u8; 20];
        f.seek(SeekFrom::Start(loc_abs))?;
        f.read_exact(&mut loc)?;
        if u32_at(&loc, 0) != Some(ZIP64_LOCATOR_SIG) {
            return Err(corrupt("zip64 locator missing"));
        }
        let rec_at = u64_at(&loc, 8).unwrap_or(u64::MAX);
        if rec_at.checked_add(56).is_none_or(|end| end > loc_abs) {
            return Err(corrupt("zip64 end record out of bounds"));
        }
        let mut rec = [0u8; 56];
        f.seek(SeekFrom::Start(rec_at))?;
        f.read_exact(&mut rec)?;
        if u32_at(&rec, 0) != Some(ZIP64_EOCD_SIG) {
            return Err(corrupt("bad zip64 end record signature"));
        }
        entries = u64_at(&rec, 32).unwrap_or(0);
        cd_size = u64_at(&rec, 40).unwrap_or(0);
        cd_offset = u64_at(&rec, 48).unwrap_or(0);
    }
    if entries > max_entries {
        return Err(ZipProblem::Unsupported(format!(
            "too many entries: {entries}"
        )));
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
        return Err(corrupt("central directory out of bounds"));
    }
    let mut cd =
        vec![0u8; usize::try_from(cd_size).map_err(|_| corrupt("central directory too large"))?];
    f.seek(SeekFrom::Start(cd_offset))?;
    f.read_exact(&mut cd)?;

    let mut members = Vec::new();
    let mut at = 0usize;
    for _ in 0..entries {
        if u32_at(&cd, at) != Some(CENTRAL_SIG) {
            return Err(corrupt("bad central directory entry signature"));
        }
        let made_by = u16_at(&cd, at + 4).ok_or_else(|| corrupt("short entry"))?;
        let flags = u16_at(&cd, at + 8).ok_or_else(|| corrupt("short entry"))?;
        let method = u16_at(&cd, at + 10).ok_or_else(|| corrupt("short entry"))?;
        let crc = u32_at(&cd, at + 16).ok_or_else(|| corrupt("short entry"))?;
        let mut compressed = u64::from(u32_at(&cd, at + 20).ok_or_else(|| corrupt("short entry"))?);
        let mut size = u64::from(u32_at(&cd, at + 24).ok_or_else(|| corrupt("short entry"))?);
        let name_len = usize::from(u16_at(&cd, at + 28).ok_or_else(|| corrupt("short entry"))?);
        let extra_len = usize::from(u16_at(&cd, at + 30).ok_or_else(|| corrupt("short entry"))?);
        let comment_len = usize::from(u16_at(&cd, at + 32).ok_or_else(|| corrupt("short entry"))?);
        let external = u32_at(&cd, at + 38).ok_or_else(|| corrupt("short entry"))?;
        let mut offset = u64::from(u32_at(&cd, at + 42).ok_or_else(|| corrupt("short entry"))?);
        if name_len > MAX_NAME {
            return Err(corrupt("member name too long"));
        }
        let name = cd
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| corrupt("short name"))?
            .to_vec();
        let extra = cd
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(|| corrupt("short extra field"))?;
        // zip64 extended information (APPNOTE 4.5.3): only the fields saturated above are present.
        let mut e = 0usize;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let n = usize::from(u16_at(extra, e + 2).unwrap_or(0));
            let body = extra
                .get(e + 4..e + 4 + n)
                .ok_or_else(|| corrupt("short extra block"))?;
            if id == 0x0001 {
                let mut p = 0usize;
                for field in [&mut size, &mut compressed, &mut offset] {
                    if *field == 0xFFFF_FFFF {
                        *field = u64_at(body, p).ok_or_else(|| corrupt("short zip64 extra"))?;
                        p += 8;
                    }
                }
            }
            e += 4 + n;
        }
        let unix_mode = (made_by >> 8 == 3 && external >> 16 != 0).then_some(external >> 16);
        members.push(ZipMember {
            name,
            method,
            flags,
            crc,
            compressed,
            size,
            offset,
            unix_mode,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    // Overlapping members are the trick behind non-recursive zip bombs: refuse them.
    let mut spans: Vec<(u64, u64)> = members.iter().map(|m| (m.offset, m.compressed)).collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if pair[0].0.saturating_add(pair[0].1) > pair[1].0 {
            return Err(corrupt("members overlap"));
        }
    }
    if spans
        .last()
        .is_some_and(|(o, c)| o.saturating_add(*c) > cd_offset)
    {
        return Err(corrupt("member data runs into the central directory"));
    }
    Ok(members)
}

/// Opens the data of one member. The reader checks, as it goes, that no more than the declared
/// size comes out, and at the end that exactly that size came out with the right CRC-32.
pub(crate) fn open_member<'a>(
    f: &'a mut File,
    m: &ZipMember,
) -> Result<Box<dyn Read + 'a>, ZipProblem> {
    if m.flags & 0x1 != 0 {
        return Err(ZipProblem::Unsupported("encrypted member".into()));
    }
    if m.method != 0 && m.method != 8 {
        return Err(ZipProblem::Unsupported(format!(
            "compression method {}",
            m.method
        )));
    }
    f.seek(SeekFrom::Start(m.offset))?;
    let mut local = [0u8; 30];
    f.read_exact(&mut local)?;
    if u32_at(&local, 0) != Some(LOCAL_SIG) {
        return Err(corrupt("bad local header signature"));
    }
    let skip =
        u64::from(u16_at(&local, 26).unwrap_or(0)) + u64::from(u16_at(&local, 28).unwrap_or(0));
    f.seek(SeekFrom::Current(
        i64::try_from(skip).map_err(|_| corrupt("bad local header"))?,
    ))?;
    let raw = Read::take(f, m.compressed);
    let inner: Box<dyn Read + 'a> = if m.method == 8 {
        Box::new(DeflateDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    Ok(Box::new(CheckedReader {
        inner,
        crc: Crc::new(),
        declared: m.size,
        seen: 0,
        want_crc: m.crc,
    }))
}

/// What went wrong inside member data; carried inside `io::Error` and recognised by the caller.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ZipDataError {
    #[error("member holds more data than its declared size")]
    TooLong,
    #[error("member holds less data than its declared size")]
    TooShort,
    #[error("member fails its crc32 check")]
    Crc,
}

struct CheckedReader<'a> {
    inner: Box<dyn Read + 'a>,
    crc: Crc,
    declared: u64,
    seen: u64,
    want_crc: u32,
}

impl Read for CheckedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.seen != self.declared {
                return Err(io::Error::other(ZipDataError::TooShort));
            }
            if self.crc.sum() != self.want_crc {
                return Err(io::Error::other(ZipDataError::Crc));
            }
            return Ok(0);
        }
        self.seen += n as u64;
        if self.seen > self.declared {
            return Err(io::Error::other(ZipDataError::TooLong));
        }
        self.crc.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}
