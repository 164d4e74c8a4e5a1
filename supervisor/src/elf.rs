//! Which programs take the system-call path: read from the executable's ELF headers, before it runs.
//!
//! A program without an interpreter (`PT_INTERP`) is statically linked and never loads the layer; a
//! Go program (a `.go.buildinfo` or `.note.go.buildid` section) makes its own system calls, so the
//! layer's libc hooks never see them. Both take the system-call path. Anything else — a dynamically
//! linked libc program, a script — keeps the layer. An ELF file for another machine cannot be
//! intercepted here and is an error, never a silent no-op.

use std::{
    fmt,
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::Path,
};

/// Why a program takes the system-call path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallReason {
    /// Statically linked: it never loads the layer.
    Static,
    /// A Go program, dynamically linked: the Go runtime makes its own system calls.
    GoRuntime,
    /// A statically linked Go program.
    StaticGo,
}

impl fmt::Display for SyscallReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Static => "it is statically linked, so it never loads the layer",
            Self::GoRuntime => "it is a Go program: the Go runtime makes its own system calls",
            Self::StaticGo => {
                "it is a statically linked Go program: the Go runtime makes its own system calls"
            }
        })
    }
}

/// What the executable's headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// A dynamically linked program (or a script): the layer serves it.
    Libc,
    /// The system-call path serves it.
    Syscall(SyscallReason),
}

/// Why a program can be served by neither path.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// An ELF file for another architecture or class.
    #[error("{path} is a program for {machine}; the system-call path serves x86_64 programs only")]
    ForeignMachine {
        /// The program.
        path: String,
        /// What it is for.
        machine: String,
    },
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The program.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_64: u8 = 2;
const LITTLE_ENDIAN: u8 = 1;
const MACHINE_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;

/// Reads the headers of the executable at `path`.
pub fn detect(path: &Path) -> Result<ProgramKind, DetectError> {
    let unreadable = |source| DetectError::Unreadable {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let mut header = [0u8; 64];
    let read = read_up_to(&mut file, &mut header).map_err(unreadable)?;
    if read < 16 || &header[..4] != ELF_MAGIC {
        // A script, or something the kernel will refuse: its interpreter is what runs.
        return Ok(ProgramKind::Libc);
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    if header[4] != CLASS_64 || header[5] != LITTLE_ENDIAN || machine != MACHINE_X86_64 {
        return Err(DetectError::ForeignMachine {
            path: path.display().to_string(),
            machine: machine_name(header[4], machine),
        });
    }
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
    let half = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let (program_headers, program_entry, program_count) = (word(32), half(54), half(56));
    let (section_headers, section_entry, section_count, names_index) =
        (word(40), half(58), half(60), half(62));

    let mut interpreter = false;
    let table = read_at(
        &mut file,
        program_headers,
        usize::from(program_entry) * usize::from(program_count),
    )
    .map_err(unreadable)?;
    for entry in table.chunks_exact(usize::from(program_entry.max(4))) {
        if u32::from_le_bytes(entry[..4].try_into().unwrap()) == PT_INTERP {
            interpreter = true;
        }
    }
    let go = has_go_section(
        &mut file,
        section_headers,
        section_entry,
        section_count,
        names_index,
    )
    .map_err(unreadable)?;
    Ok(match (interpreter, go) {
        (false, true) => ProgramKind::Syscall(SyscallReason::StaticGo),
        (false, false) => ProgramKind::Syscall(SyscallReason::Static),
        (true, true) => ProgramKind::Syscall(SyscallReason::GoRuntime),
        (true, false) => ProgramKind::Libc,
    })
}

/// Whether the section table names a Go section (stripped binaries keep `.go.buildinfo`).
fn has_go_section(
    file: &mut File,
    offset: u64,
    entry: u16,
    count: u16,
    names_index: u16,
) -> io::Result<bool> {
    let entry = usize::from(entry);
    if offset == 0 || count == 0 || entry < 64 || names_index >= count {
        return Ok(false);
    }
    let table = read_at(file, offset, entry * usize::from(count))?;
    let field =
        |section: &[u8], at: usize| u64::from_le_bytes(section[at..at + 8].try_into().unwrap());
    let names_section = &table[usize::from(names_index) * entry..][..entry];
    let names = read_at(
        file,
        field(names_section, 24),
        usize::try_from(field(names_section, 32).min(1 << 20)).unwrap_or(0),
    )?;
    Ok(table.chunks_exact(entry).any(|section| {
        let name_offset = u32::from_le_bytes(section[..4].try_into().unwrap()) as usize;
        let name = names
            .get(name_offset..)
            .and_then(|rest| rest.split(|byte| *byte == 0).next())
            .unwrap_or_default();
        name == b".go.buildinfo" || name == b".note.go.buildid"
    }))
}

fn read_at(file: &mut File, offset: u64, length: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buffer = vec![0; length.min(16 << 20)];
    let read = read_up_to(file, &mut buffer)?;
    buffer.truncate(read);
    Ok(buffer)
}

fn read_up_to(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            count => filled += count,
        }
    }
    Ok(filled)
}

fn machine_name(class: u8, machine: u16) -> String {
    let name = match machine {
        3 => "i386",
        40 => "arm",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv",
        _ => return format!("machine {machine} (ELF class {class})"),
    };
    if class == CLASS_64 || machine == 3 || machine == 40 {
        name.to_owned()
    } else {
        format!("{name} (32-bit)")
    }
}

/// Finds `program` as `execvp` would: a name with a slash as it is, else the first executable
/// file of that name in `path` (the program's `PATH`).
pub fn resolve(program: &Path, path: Option<&std::ffi::OsStr>) -> Option<std::path::PathBuf> {
    use std::os::unix::{ffi::OsStrExt, fs::PermissionsExt};
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Some(program.to_path_buf());
    }
    let path = path?;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_libc_program_keeps_the_layer() {
        assert_eq!(
            detect(Path::new("/bin/sh")).unwrap(),
            ProgramKind::Libc,
            "/bin/sh is a dynamically linked C program"
        );
    }

    #[test]
    fn a_script_keeps_the_layer() {
        let dir = std::env::temp_dir().join(format!("mirrord-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(detect(&script).unwrap(), ProgramKind::Libc);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_program_for_another_machine_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("mirrord-elf-arm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("arm-program");
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(ELF_MAGIC);
        header[4] = CLASS_64;
        header[5] = LITTLE_ENDIAN;
        header[18..20].copy_from_slice(&183u16.to_le_bytes());
        std::fs::write(&program, header).unwrap();
        let error = detect(&program).unwrap_err().to_string();
        assert!(error.contains("aarch64"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bare_name_is_found_on_the_path() {
        let found = resolve(
            Path::new("sh"),
            Some(std::ffi::OsStr::new("/nonexistent:/bin")),
        );
        assert_eq!(found.as_deref(), Some(Path::new("/bin/sh")));
        assert_eq!(
            resolve(
                Path::new("no-such-program-here"),
                Some(std::ffi::OsStr::new("/bin"))
            ),
            None
        );
    }
}
