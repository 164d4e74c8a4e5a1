//! The seccomp filter: which system calls stop for the supervisor, as a classic BPF program.
//!
//! The program checks the architecture (calls of any other ABI, x32 included, run untouched), then
//! compares the call's number with the intercepted ones: a match returns `SECCOMP_RET_USER_NOTIF`,
//! anything else `SECCOMP_RET_ALLOW`. A call that is not intercepted costs the BPF run and nothing
//! more: no notification, no context switch.

use mirrord_config::{
    file::{FsMode, IncomingMode},
    resolved::ResolvedConfig,
};

/// `AUDIT_ARCH_X86_64`: the architecture the numbers below are for.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// The file calls: every one names a path that the `fs` policy decides on.
pub(crate) const FILE_CALLS: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
];

/// The system calls a session's config needs intercepted.
pub(crate) fn intercepted_calls(config: &ResolvedConfig) -> Vec<libc::c_long> {
    let mut calls = Vec::new();
    if config.feature.fs.mode != FsMode::Local {
        calls.extend_from_slice(FILE_CALLS);
    }
    let outgoing = &config.feature.network.outgoing;
    if outgoing.tcp || outgoing.udp {
        calls.push(libc::SYS_connect);
    }
    // `listen` also records the session's own listeners, which loopback connections reach.
    if config.feature.network.incoming.mode != IncomingMode::Off || outgoing.tcp {
        calls.push(libc::SYS_listen);
    }
    if config.feature.hostname {
        calls.push(libc::SYS_uname);
    }
    calls
}

/// The BPF program that sends `calls` to the supervisor and lets everything else through.
pub(crate) fn program(calls: &[libc::c_long]) -> Vec<libc::sock_filter> {
    let count = calls.len();
    assert!(count < 255, "a jump of the filter must fit in one byte");
    let mut program = vec![
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH_OFFSET),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            1,
            0,
        ),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
    ];
    for (index, &call) in calls.iter().enumerate() {
        // From the instruction after this one: the remaining comparisons, then ALLOW, then NOTIFY.
        let to_notify = (count - index) as u8;
        program.push(jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            call as u32,
            to_notify,
            0,
        ));
    }
    program.push(statement(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_ALLOW,
    ));
    program.push(statement(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_USER_NOTIF,
    ));
    program
}

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program as the kernel would, for one call.
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut accumulator = 0;
        let mut pc = 0;
        loop {
            let instruction = program[pc];
            let code = u32::from(instruction.code);
            if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS {
                accumulator = if instruction.k == ARCH_OFFSET {
                    arch
                } else {
                    nr
                };
                pc += 1;
            } else if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                let offset = if accumulator == instruction.k {
                    instruction.jt
                } else {
                    instruction.jf
                };
                pc += 1 + usize::from(offset);
            } else if code == libc::BPF_RET | libc::BPF_K {
                return instruction.k;
            } else {
                panic!("unexpected instruction {code:#x}");
            }
        }
    }

    #[test]
    fn intercepted_calls_notify_and_every_other_call_or_abi_is_allowed() {
        let program = program(FILE_CALLS);
        for &call in FILE_CALLS {
            assert_eq!(
                run(&program, AUDIT_ARCH_X86_64, call as u32),
                libc::SECCOMP_RET_USER_NOTIF,
                "call {call}"
            );
        }
        for call in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_close,
            libc::SYS_mmap,
        ] {
            assert_eq!(
                run(&program, AUDIT_ARCH_X86_64, call as u32),
                libc::SECCOMP_RET_ALLOW
            );
        }
        // i386's `open` is 5, x86_64's `fstat`: another ABI is never intercepted.
        assert_eq!(run(&program, 0x4000_0003, 5), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            run(
                &program,
                AUDIT_ARCH_X86_64,
                0x4000_0000 | libc::SYS_openat as u32
            ),
            libc::SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn an_empty_set_lets_everything_through() {
        let program = program(&[]);
        assert_eq!(
            run(&program, AUDIT_ARCH_X86_64, libc::SYS_openat as u32),
            libc::SECCOMP_RET_ALLOW
        );
    }
}
