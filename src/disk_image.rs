//! What a VM disk image file is, from its first bytes: the format QEMU is
//! told to open it as (never left to QEMU's probing, which refuses to write
//! block 0 of a guessed raw image and can be fooled by a guest that writes
//! a qcow2 header into its own disk), and a clear refusal for a file that is
//! no disk image. Pure: read by the scenario's validation and by the VM
//! backends.

use std::io::Read;
use std::path::{Path, PathBuf};

/// How QEMU opens a disk image (`format=` of `-drive`, `type=` of libvirt's
/// `<driver>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    Qcow2,
    Raw,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// What the first bytes say, with enough detail to record and to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// A qcow2 image (version 2 or 3).
    Qcow2 { version: u32 },
    /// A raw disk with a partition table: an MBR (which a GPT disk also
    /// carries, as its protective MBR).
    RawPartitioned { gpt: bool },
    /// A raw image of a bare ext2/3/4 file system (no partition table):
    /// bootable only with a kernel given (`root=/dev/vda`).
    RawExt,
    /// A format QEMU knows but vmbench does not boot as is.
    Other(&'static str),
    /// Nothing recognisable.
    Unknown,
}

/// The bytes [`detect`] needs: the ext superblock's magic is at 1080.
pub const HEADER_BYTES: usize = 2048;

/// What `header` (the file's first bytes, up to [`HEADER_BYTES`]) is.
pub fn detect(header: &[u8]) -> Detected {
    let at = |offset: usize, magic: &[u8]| header.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"QFI\xfb") {
        let version = header
            .get(4..8)
            .map_or(0, |b| u32::from_be_bytes(b.try_into().expect("four bytes")));
        return match version {
            2 | 3 => Detected::Qcow2 { version },
            _ => Detected::Other("qcow2 of an unknown version"),
        };
    }
    for (offset, magic, name) in [
        (0, &b"QFI\0"[..], "qed"),
        (0, b"KDMV", "vmdk"),
        (0, b"# Disk DescriptorFile", "vmdk (descriptor)"),
        (0, b"vhdxfile", "vhdx"),
        (0, b"conectix", "vpc (vhd)"),
        (64, b"\x7f\x10\xda\xbe", "vdi"),
        (0, b"LUKS\xba\xbe", "luks"),
    ] {
        if at(offset, magic) {
            return Detected::Other(name);
        }
    }
    if at(510, b"\x55\xaa") {
        return Detected::RawPartitioned { gpt: at(512, b"EFI PART") };
    }
    if at(1080, b"\x53\xef") {
        return Detected::RawExt;
    }
    Detected::Unknown
}

impl Detected {
    /// The format to open it as, or why it cannot be booted.
    pub fn format(&self) -> Result<DiskFormat, String> {
        match self {
            Detected::Qcow2 { .. } => Ok(DiskFormat::Qcow2),
            Detected::RawPartitioned { .. } | Detected::RawExt => Ok(DiskFormat::Raw),
            Detected::Other(name) => Err(format!(
                "is a {name} image; convert it with `qemu-img convert -O qcow2 IN OUT.qcow2` and name the qcow2"
            )),
            Detected::Unknown => {
                Err("is not a disk image: no qcow2 header, no partition table (MBR or GPT) and no ext2/3/4 file system".to_string())
            }
        }
    }

    /// How `run.json` describes it.
    pub fn describe(&self) -> String {
        match self {
            Detected::Qcow2 { version } => format!("qcow2 (version {version})"),
            Detected::RawPartitioned { gpt: true } => "raw, GPT partition table".into(),
            Detected::RawPartitioned { gpt: false } => "raw, MBR partition table".into(),
            Detected::RawExt => "raw, a bare ext2/3/4 file system".into(),
            Detected::Other(name) => (*name).to_string(),
            Detected::Unknown => "unknown".into(),
        }
    }
}

/// Reads the first bytes of `path` and says what it is.
pub fn detect_file(path: &Path) -> std::io::Result<Detected> {
    Ok(detect(&read_header(path)?))
}

fn read_header(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut header = Vec::with_capacity(HEADER_BYTES);
    std::fs::File::open(path)?.take(HEADER_BYTES as u64).read_to_end(&mut header)?;
    Ok(header)
}

/// A qcow2 header's virtual size and where its backing file's name is
/// (offset and length in the file), from its first 32 bytes.
pub fn qcow2_fields(header: &[u8]) -> Option<(u64, Option<(u64, u32)>)> {
    let u64_at = |o: usize| Some(u64::from_be_bytes(header.get(o..o + 8)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_be_bytes(header.get(o..o + 4)?.try_into().ok()?));
    let (backing_offset, backing_len, size) = (u64_at(8)?, u32_at(16)?, u64_at(24)?);
    let backing = (backing_offset != 0 && backing_len != 0).then_some((backing_offset, backing_len));
    Some((size, backing))
}

/// One file of a disk image's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub path: PathBuf,
    pub detected: Detected,
    /// The size the guest sees.
    pub virtual_bytes: u64,
}

/// A qcow2 chain deeper than this is refused (a loop, most likely).
pub const MAX_CHAIN: usize = 16;

/// `path` and every backing file below it (a qcow2 overlay's), each with
/// its format and virtual size; an error names a backing file that is
/// missing or not a disk image. A relative backing name is relative to the
/// image that names it, as QEMU resolves it.
pub fn chain(path: &Path) -> Result<Vec<Layer>, String> {
    let mut layers: Vec<Layer> = Vec::new();
    let mut next = Some(path.to_path_buf());
    while let Some(path) = next.take() {
        if layers.len() == MAX_CHAIN {
            return Err(format!("has a backing chain deeper than {MAX_CHAIN} files (a loop?)"));
        }
        let header = read_header(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let detected = detect(&header);
        if let Err(why) = detected.format() {
            return Err(format!("{} {why}", path.display()));
        }
        let virtual_bytes = match (&detected, qcow2_fields(&header)) {
            (Detected::Qcow2 { .. }, Some((size, backing))) => {
                if let Some((offset, len)) = backing {
                    let name = backing_name(&path, offset, len)?;
                    let below = path.parent().unwrap_or(Path::new("/")).join(name);
                    if !below.is_file() {
                        return Err(format!("{}'s backing file {} does not exist", path.display(), below.display()));
                    }
                    next = Some(below);
                }
                size
            }
            _ => std::fs::metadata(&path).map_err(|e| e.to_string())?.len(),
        };
        layers.push(Layer {
            path,
            detected,
            virtual_bytes,
        });
    }
    Ok(layers)
}

/// The backing file name a qcow2 header points at.
fn backing_name(path: &Path, offset: u64, len: u32) -> Result<String, String> {
    use std::io::{Seek, SeekFrom};
    if len > 1023 {
        return Err(format!(
            "{}'s backing file name is {len} bytes long (qcow2 allows 1023)",
            path.display()
        ));
    }
    let mut name = vec![0u8; len as usize];
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut name))
        .map_err(|e| format!("cannot read {}'s backing file name: {e}", path.display()))?;
    String::from_utf8(name).map_err(|_| format!("{}'s backing file name is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(offset: usize, magic: &[u8]) -> Vec<u8> {
        let mut header = vec![0u8; HEADER_BYTES];
        header[offset..offset + magic.len()].copy_from_slice(magic);
        header
    }

    #[test]
    fn qcow2_is_told_by_its_magic_and_version() {
        let mut h = with(0, b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(detect(&h), Detected::Qcow2 { version: 3 });
        assert_eq!(detect(&h).format(), Ok(DiskFormat::Qcow2));
        h[4..8].copy_from_slice(&9u32.to_be_bytes());
        assert!(detect(&h).format().is_err());
    }

    #[test]
    fn a_raw_disk_is_told_by_its_partition_table_or_its_file_system() {
        assert_eq!(detect(&with(510, b"\x55\xaa")), Detected::RawPartitioned { gpt: false });
        let mut gpt = with(510, b"\x55\xaa");
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(detect(&gpt), Detected::RawPartitioned { gpt: true });
        assert_eq!(detect(&with(1080, b"\x53\xef")), Detected::RawExt);
        assert_eq!(detect(&with(1080, b"\x53\xef")).format(), Ok(DiskFormat::Raw));
    }

    #[test]
    fn a_qcow2_chain_is_followed_to_its_base_and_a_missing_backing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut base = with(510, b"\x55\xaa");
        base.resize(1 << 20, 0);
        std::fs::write(dir.path().join("base.img"), &base).unwrap();
        let overlay = |backing: &str, size: u64| {
            let mut h = with(0, b"QFI\xfb");
            h[4..8].copy_from_slice(&3u32.to_be_bytes());
            h[8..16].copy_from_slice(&512u64.to_be_bytes());
            h[16..20].copy_from_slice(&(backing.len() as u32).to_be_bytes());
            h[24..32].copy_from_slice(&size.to_be_bytes());
            h[512..512 + backing.len()].copy_from_slice(backing.as_bytes());
            h
        };
        std::fs::write(dir.path().join("top.qcow2"), overlay("base.img", 8 << 30)).unwrap();
        let layers = chain(&dir.path().join("top.qcow2")).unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!((layers[0].virtual_bytes, layers[1].virtual_bytes), (8 << 30, 1 << 20));
        assert_eq!(layers[1].path, dir.path().join("base.img"));
        std::fs::write(dir.path().join("lost.qcow2"), overlay("gone.img", 1 << 30)).unwrap();
        let e = chain(&dir.path().join("lost.qcow2")).unwrap_err();
        assert!(e.contains("gone.img") && e.contains("does not exist"), "{e}");
        std::fs::write(dir.path().join("loop.qcow2"), overlay("loop.qcow2", 1 << 30)).unwrap();
        assert!(chain(&dir.path().join("loop.qcow2")).unwrap_err().contains("deeper than"));
    }

    #[test]
    fn other_formats_and_other_files_are_refused_saying_what_they_are() {
        let e = detect(&with(0, b"KDMV")).format().unwrap_err();
        assert!(e.contains("vmdk") && e.contains("qemu-img convert"), "{e}");
        let e = detect(b"hello, world").format().unwrap_err();
        assert!(e.contains("not a disk image"), "{e}");
        // A short file: no panic, nothing recognised.
        assert_eq!(detect(b""), Detected::Unknown);
        assert_eq!(detect(&[0x55, 0xaa]), Detected::Unknown);
    }
}
