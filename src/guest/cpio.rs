//! A writer for the `newc` cpio format, the one the Linux kernel unpacks as
//! an initramfs. Output is deterministic (fixed inode numbers and mtime 0),
//! so the same inputs give the same bytes and the same cache key.

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;

#[derive(Debug, Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
}

impl CpioWriter {
    pub fn new() -> Self {
        CpioWriter {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    pub fn dir(&mut self, path: &str, perm: u32) -> &mut Self {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data)
    }

    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[])
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry(TRAILER, 0, 1, (0, 0), &[]);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> &mut Self {
        let path = path.trim_start_matches('/');
        assert!(!path.is_empty() && !path.contains('\0'), "bad cpio path {path:?}");
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(data.len()).expect("cpio entries are under 4 GiB"),
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            (path.len() + 1) as u32,
            0, // check
        ];
        self.out.extend_from_slice(MAGIC.as_bytes());
        for field in fields {
            self.out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(path.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, mode, data and (rdev major, minor) of one entry.
    type Entry = (String, u32, Vec<u8>, (u32, u32));

    /// A minimal newc reader, independent of the writer, to check layout.
    fn read(archive: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut pos = 0;
        loop {
            let header = std::str::from_utf8(&archive[pos..pos + 110]).unwrap();
            assert_eq!(&header[..6], MAGIC);
            let field = |i: usize| u32::from_str_radix(&header[6 + i * 8..14 + i * 8], 16).unwrap();
            let (mode, size, rmaj, rmin, namesize) = (field(1), field(6) as usize, field(9), field(10), field(11) as usize);
            let name = std::str::from_utf8(&archive[pos + 110..pos + 110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(archive[pos + 110 + namesize - 1], 0);
            pos = (pos + 110 + namesize).div_ceil(4) * 4;
            let data = archive[pos..pos + size].to_vec();
            pos = (pos + size).div_ceil(4) * 4;
            if name == TRAILER {
                assert_eq!(pos, archive.len());
                return entries;
            }
            entries.push((name, mode, data, (rmaj, rmin)));
        }
    }

    #[test]
    fn entries_read_back_with_alignment() {
        let mut w = CpioWriter::new();
        w.dir("/dev", 0o755)
            .char_device("/dev/console", 0o600, 5, 1)
            .file("/init", 0o755, b"hello");
        let archive = w.finish();
        assert_eq!(archive.len() % 4, 0);
        let entries = read(&archive);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0, "dev");
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!(entries[1].3, (5, 1));
        assert_eq!(entries[1].1, S_IFCHR | 0o600);
        assert_eq!(entries[2], ("init".to_string(), S_IFREG | 0o755, b"hello".to_vec(), (0, 0)));
    }

    #[test]
    fn output_is_deterministic() {
        let build = || {
            let mut w = CpioWriter::new();
            w.file("a", 0o644, b"123");
            w.finish()
        };
        assert_eq!(build(), build());
    }

    #[test]
    #[should_panic(expected = "bad cpio path")]
    fn empty_paths_are_refused() {
        CpioWriter::new().file("/", 0o644, b"");
    }
}
