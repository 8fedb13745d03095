//! What the ELF headers of a program say about how it is linked: whether it
//! can run where there is no dynamic loader (a VM's initramfs, a `FROM
//! scratch` image). Pure: read by the scenario's validation and the guest
//! builders alike.

/// What the ELF headers say about how a binary is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    /// No program interpreter: runs without a dynamic loader.
    Static,
    /// Needs the named dynamic loader.
    Dynamic(String),
    NotElf,
}

/// Reads the program headers of a 64-bit little-endian ELF file.
pub fn linkage(elf: &[u8]) -> Linkage {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Linkage::NotElf;
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if ph + 0x28 > elf.len() {
            return Linkage::NotElf;
        }
        if u32_at(ph) == PT_INTERP {
            let (offset, size) = (u64_at(ph + 0x08), u64_at(ph + 0x20));
            let interp = elf.get(offset..offset + size).unwrap_or_default();
            let interp = String::from_utf8_lossy(interp).trim_end_matches('\0').to_string();
            return Linkage::Dynamic(interp);
        }
    }
    Linkage::Static
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_is_recognised() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        assert!(matches!(linkage(&exe), Linkage::Dynamic(ref l) if l.contains("ld-linux")));
        assert_eq!(linkage(b"#!/bin/sh\n"), Linkage::NotElf);
    }
}
