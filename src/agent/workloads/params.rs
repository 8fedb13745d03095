//! Reading workload parameters sent as `vmbench.p.<name>=<value>`.

use super::Params;

/// One workload parameter: a whole number with a default and a range. The
/// host validates scenarios against these same tables, so the agent and the
/// scenario files cannot disagree about names, defaults or limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    /// One line for `scenarios/README.md` and error messages.
    pub doc: &'static str,
}

/// Reads every parameter of `specs` from `params`, checking names and ranges.
/// Returns the values in the order of `specs`.
pub fn read(params: &Params, workload: &str, specs: &[ParamSpec]) -> Result<Vec<u64>, String> {
    if let Some(unknown) = params.keys().find(|k| !specs.iter().any(|s| s.name == k.as_str())) {
        let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
        return Err(format!(
            "the {workload} workload has no parameter `{unknown}` (it takes: {})",
            known.join(", ")
        ));
    }
    specs
        .iter()
        .map(|spec| {
            let value = match params.get(spec.name) {
                None => spec.default,
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("parameter `{}` must be a whole number, got `{v}`", spec.name))?,
            };
            check(spec, value)
        })
        .collect()
}

/// `value` if it is within the range of `spec`.
pub fn check(spec: &ParamSpec, value: u64) -> Result<u64, String> {
    if (spec.min..=spec.max).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is out of range for `{}`: must be from {} to {}",
            spec.name, spec.min, spec.max
        ))
    }
}

/// Threads to use for a `threads` value: 0 means every CPU this process may
/// run on.
pub fn threads(requested: u64) -> usize {
    if requested == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        requested as usize
    }
}

/// A small, fast, deterministic generator for filling buffers and shuffling.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Fills `buf` with pseudo-random bytes, eight per step: data no storage
/// layer can compress or mistake for zeros, at memory speed.
pub fn fill_random(buf: &mut [u8], rng: &mut XorShift) {
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let rest = words.into_remainder();
    let last = rng.next_u64().to_le_bytes();
    rest.copy_from_slice(&last[..rest.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_fill_is_not_zeros_and_does_not_repeat() {
        let mut buf = vec![0u8; 64 * 1024 + 5];
        fill_random(&mut buf, &mut XorShift(0xd1b54a32d192ed03));
        let zeros = buf.iter().filter(|&&b| b == 0).count();
        // About 1 byte in 256 is zero by chance.
        assert!(zeros < buf.len() / 100, "{zeros} zero bytes");
        assert!(buf[buf.len() - 5..].iter().any(|&b| b != 0));
        let (first, second) = buf.split_at(4096);
        assert_ne!(first, &second[..4096], "pages must differ");
    }
}
