//! Paths made absolute and normal before the policy decides (`.`, `..`, empty components and
//! trailing slashes resolved lexically), with a fast check that most paths already are.

use std::borrow::Cow;

use super::tables::bytes_equal;

/// `path` made absolute against `cwd` (an absolute path is returned as it is).
pub(crate) fn absolute<'a>(path: &'a [u8], cwd: &[u8]) -> Cow<'a, [u8]> {
    if path.first() == Some(&b'/') {
        return Cow::Borrowed(path);
    }
    let mut joined = Vec::with_capacity(cwd.len() + 1 + path.len());
    joined.extend_from_slice(cwd);
    if !cwd.ends_with(b"/") {
        joined.push(b'/');
    }
    joined.extend_from_slice(path);
    Cow::Owned(joined)
}

/// Removes `.` components, empty components and trailing slashes, and resolves `..` lexically (never
/// above `/`). Borrows when there is nothing to do, which is the common case.
pub(crate) fn normalize(path: &[u8]) -> Cow<'_, [u8]> {
    if is_normal(path) {
        return Cow::Borrowed(path);
    }
    let absolute = path.first() == Some(&b'/');
    let mut components: Vec<&[u8]> = Vec::new();
    for component in path.split(|byte| *byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() && !absolute {
                    components.push(b"..");
                }
            }
            other => components.push(other),
        }
    }
    let mut normal = Vec::with_capacity(path.len());
    for (index, component) in components.iter().enumerate() {
        if absolute || index > 0 {
            normal.push(b'/');
        }
        normal.extend_from_slice(component);
    }
    if normal.is_empty() {
        normal.push(if absolute { b'/' } else { b'.' });
    }
    Cow::Owned(normal)
}

/// Whether `normalize` has nothing to do: no empty, `.` or `..` component and no trailing slash.
///
/// This runs for every path argument, so it looks at many bytes at a time for a `/` followed by `/` or
/// `.` (blocks overlap by one byte so that every adjacent pair is seen) and checks only those places.
#[inline]
pub(super) fn is_normal(path: &[u8]) -> bool {
    let len = path.len();
    if len > 1 && path[len - 1] == b'/' {
        return false;
    }
    if path.first() == Some(&b'.') && !component_is_plain(path, 0) {
        return false;
    }
    if len < 8 {
        return path.windows(2).enumerate().all(|(index, pair)| {
            pair[0] != b'/' || !matches!(pair[1], b'/' | b'.') || {
                pair[1] == b'.' && component_is_plain(path, index + 1)
            }
        });
    }
    if len < BLOCK {
        // Two overlapping words cover every adjacent pair.
        let word = |start: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&path[start..start + 8]);
            u64::from_le_bytes(bytes)
        };
        return word_pairs_are_plain(path, 0, word(0))
            && word_pairs_are_plain(path, len - 8, word(len - 8));
    }
    let mut offset = 0;
    loop {
        let start = offset.min(len - BLOCK);
        let Ok(block) = <&[u8; BLOCK]>::try_from(&path[start..start + BLOCK]) else {
            return false;
        };
        if !pairs_are_plain(path, start, block) {
            return false;
        }
        if start == len - BLOCK {
            return true;
        }
        offset += BLOCK - 1;
    }
}

/// How many bytes `pairs_are_plain` looks at at once.
pub(super) const BLOCK: usize = 16;

/// Bit `i` set when `block[i]` is `/` and `block[i + 1]` is `/` or `.`.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn slash_pairs(block: &[u8; BLOCK]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86-64 processor (the target's baseline); `block` is 16 readable
    // bytes and the unaligned load has no alignment requirement.
    let (slash_mask, follower_mask) = unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let slashes = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'/' as i8));
        let dots = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'.' as i8));
        (
            _mm_movemask_epi8(slashes) as u32,
            _mm_movemask_epi8(_mm_or_si128(slashes, dots)) as u32,
        )
    };
    slash_mask & (follower_mask >> 1)
}

/// Bit `i` set when `block[i]` is `/` and `block[i + 1]` is `/` or `.`.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(super) fn slash_pairs(block: &[u8; BLOCK]) -> u32 {
    let mut pairs = 0;
    for index in 0..BLOCK - 1 {
        if block[index] == b'/' && matches!(block[index + 1], b'/' | b'.') {
            pairs |= 1 << index;
        }
    }
    pairs
}

/// Checks the `/` + (`/` or `.`) pairs inside the 8 bytes of `word` (read from `path` at `start`).
#[inline]
pub(super) fn word_pairs_are_plain(path: &[u8], start: usize, word: u64) -> bool {
    let slashes = bytes_equal(word, b'/');
    let followers = slashes | bytes_equal(word, b'.');
    let mut pairs = slashes & (followers >> 8);
    while pairs != 0 {
        let index = start + (pairs.trailing_zeros() / 8) as usize;
        pairs &= pairs - 1;
        if path[index + 1] == b'/' || !component_is_plain(path, index + 1) {
            return false;
        }
    }
    true
}

/// Checks the `/` + (`/` or `.`) pairs inside `block` (read from `path` at `start`).
#[inline]
pub(super) fn pairs_are_plain(path: &[u8], start: usize, block: &[u8; BLOCK]) -> bool {
    let mut pairs = slash_pairs(block);
    while pairs != 0 {
        let index = start + pairs.trailing_zeros() as usize;
        pairs &= pairs - 1;
        if path[index + 1] == b'/' || !component_is_plain(path, index + 1) {
            return false;
        }
    }
    true
}

/// Whether the component starting at `at` (with a dot) is a name rather than `.` or `..`.
pub(super) fn component_is_plain(path: &[u8], at: usize) -> bool {
    let rest = &path[at..];
    let end = rest
        .iter()
        .position(|byte| *byte == b'/')
        .unwrap_or(rest.len());
    !matches!(&rest[..end], b"." | b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_and_slashes() {
        let cases: &[(&str, &str)] = &[
            ("/app/config.yaml", "/app/config.yaml"),
            ("/", "/"),
            ("/app//x", "/app/x"),
            ("/app/./x", "/app/x"),
            ("/app/../etc/x", "/etc/x"),
            ("/../../etc", "/etc"),
            ("/app/x/", "/app/x"),
            ("/app/.hidden/x", "/app/.hidden/x"),
            ("/app/..hidden", "/app/..hidden"),
            ("/app/x/..", "/app"),
            ("/..", "/"),
            ("a/../../b", "../b"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                String::from_utf8_lossy(&normalize(input.as_bytes())),
                *expected,
                "{input}"
            );
        }
        assert!(matches!(normalize(b"/usr/lib/x.so"), Cow::Borrowed(_)));
    }

    /// The plain definition `is_normal` must agree with.
    fn is_normal_reference(path: &[u8]) -> bool {
        if path.len() > 1 && path.ends_with(b"/") {
            return false;
        }
        let components: Vec<&[u8]> = path.split(|byte| *byte == b'/').collect();
        components.iter().enumerate().all(|(index, component)| {
            let empty_ok = index == 0 || (path == b"/" && index == 1);
            (!component.is_empty() || empty_ok) && *component != b"." && *component != b".."
        })
    }

    #[test]
    fn is_normal_agrees_with_its_definition_across_word_boundaries() {
        let parts: [&[u8]; 8] = [
            b"",
            b".",
            b"..",
            b".hidden",
            b"..x",
            b"a",
            b"abcdefghij",
            b"lib.so",
        ];
        let mut checked = 0;
        for first in parts {
            for second in parts {
                for third in parts {
                    for prefix in [&b""[..], b"/", b"/usr", b"/1234567"] {
                        let path = [prefix, first, second, third].join(&b'/');
                        for candidate in [path.clone(), [path.as_slice(), b"/"].concat()] {
                            assert_eq!(
                                is_normal(&candidate),
                                is_normal_reference(&candidate),
                                "{}",
                                String::from_utf8_lossy(&candidate)
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 4000);
    }

    #[test]
    fn relative_paths_join_the_working_directory() {
        assert_eq!(absolute(b"a/b", b"/srv").as_ref(), b"/srv/a/b");
        assert_eq!(absolute(b"a", b"/").as_ref(), b"/a");
        assert_eq!(absolute(b"/x", b"/srv").as_ref(), b"/x");
    }
}
