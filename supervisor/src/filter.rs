//! The seccomp filter: which system calls stop for the supervisor, as a classic BPF program.
//!
//! The program checks the architecture (calls of any other ABI, x32 included, run untouched), then
//! compares the call's number with the intercepted ones: a match returns `SECCOMP_RET_USER_NOTIF`,
//! anything else `SECCOMP_RET_ALLOW`. A call that is not intercepted costs the BPF run and nothing
//! more: no notification, no context switch. `sendto` stops only when it names an address (its
//! fifth argument is not NULL): `send` on a connected socket, which libc makes with `sendto`, runs
//! untouched; `recvfrom` likewise only when it asks for the source (`recv` is `recvfrom` with
//! NULL there). `recvmsg` and `recvmmsg` keep the address inside the message, out of a filter's
//! reach, so they stop whenever outgoing UDP goes through the target (the supervisor decides).

use mirrord_config::{
    file::{FsMode, IncomingMode},
    resolved::ResolvedConfig,
};

/// `AUDIT_ARCH_X86_64`: the architecture the numbers below are for.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// `args[4]` (64 bits, little-endian): its low and high words.
const ARG4_LOW_OFFSET: u32 = 16 + 4 * 8;
const ARG4_HIGH_OFFSET: u32 = ARG4_LOW_OFFSET + 4;

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
    if outgoing.tcp || outgoing.udp || !outgoing.unix_streams.is_empty() {
        calls.push(libc::SYS_connect);
    }
    if outgoing.udp {
        calls.extend_from_slice(&[libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_sendmmsg]);
    }
    // `listen` also records the session's own listeners, which loopback connections reach.
    let incoming = config.feature.network.incoming.mode != IncomingMode::Off;
    if incoming || outgoing.tcp {
        calls.push(libc::SYS_listen);
    }
    // `bind` applies `listen_ports`; `accept` and `getpeername` report the real peer of a
    // delivered connection.
    if incoming {
        calls.extend_from_slice(&[
            libc::SYS_bind,
            libc::SYS_accept,
            libc::SYS_accept4,
            libc::SYS_getpeername,
        ]);
    }
    // The source of datagrams that came through a relay (`recvmsg`, `recvmmsg`: every one, as
    // the address is inside the message, which a filter cannot read).
    if outgoing.udp {
        calls.extend_from_slice(&[libc::SYS_recvfrom, libc::SYS_recvmsg, libc::SYS_recvmmsg]);
    }
    if config.feature.hostname {
        calls.push(libc::SYS_uname);
    }
    calls
}

/// The calls intercepted only when their fifth argument (an address) is not NULL.
const ADDRESS_CALLS: &[libc::c_long] = &[libc::SYS_sendto, libc::SYS_recvfrom];

/// The BPF program that sends `calls` to the supervisor and lets everything else through
/// (`sendto` and `recvfrom` only with an address).
pub(crate) fn program(calls: &[libc::c_long]) -> Vec<libc::sock_filter> {
    let address_calls: Vec<libc::c_long> = calls
        .iter()
        .copied()
        .filter(|call| ADDRESS_CALLS.contains(call))
        .collect();
    let calls: Vec<libc::c_long> = calls
        .iter()
        .copied()
        .filter(|call| !ADDRESS_CALLS.contains(call))
        .collect();
    let count = calls.len();
    // Each address call: compare the number (else on to the next block), load args[4]; a
    // non-zero low or high word notifies, else allow.
    let mut address_blocks = Vec::new();
    for (index, &call) in address_calls.iter().enumerate() {
        let after = (5 * (address_calls.len() - 1 - index)) as u8;
        address_blocks.extend_from_slice(&[
            jump(
                libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
                call as u32,
                0,
                4,
            ),
            statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARG4_LOW_OFFSET),
            jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 0, 3 + after),
            statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARG4_HIGH_OFFSET),
            jump(
                libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
                0,
                after,
                after + 1,
            ),
        ]);
    }
    let address_blocks = address_blocks.as_slice();
    assert!(
        count + address_blocks.len() < 255,
        "a jump of the filter must fit in one byte"
    );
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
        // From the instruction after this one: the remaining comparisons, the address calls' blocks,
        // then ALLOW, then NOTIFY.
        let to_notify = (count - index + address_blocks.len()) as u8;
        program.push(jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            call as u32,
            to_notify,
            0,
        ));
    }
    program.extend_from_slice(address_blocks);
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
        run_with_arg4(program, arch, nr, 0)
    }

    /// Runs the program as the kernel would, for one call whose fifth argument is `arg4`.
    fn run_with_arg4(program: &[libc::sock_filter], arch: u32, nr: u32, arg4: u64) -> u32 {
        let mut accumulator = 0;
        let mut pc = 0;
        loop {
            let instruction = program[pc];
            let code = u32::from(instruction.code);
            if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS {
                accumulator = match instruction.k {
                    ARCH_OFFSET => arch,
                    NR_OFFSET => nr,
                    ARG4_LOW_OFFSET => arg4 as u32,
                    ARG4_HIGH_OFFSET => (arg4 >> 32) as u32,
                    other => panic!("unexpected load at {other}"),
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
    fn sendto_notifies_only_with_an_address_and_the_other_calls_still_do() {
        let calls = [
            libc::SYS_connect,
            libc::SYS_sendto,
            libc::SYS_sendmsg,
            libc::SYS_listen,
        ];
        let program = program(&calls);
        let sendto = libc::SYS_sendto as u32;
        for (arg4, expected) in [
            (0, libc::SECCOMP_RET_ALLOW),
            (0x7ffd_1234_5678, libc::SECCOMP_RET_USER_NOTIF),
            (0x1000, libc::SECCOMP_RET_USER_NOTIF),
            (0x7fff_0000_0000, libc::SECCOMP_RET_USER_NOTIF),
        ] {
            assert_eq!(
                run_with_arg4(&program, AUDIT_ARCH_X86_64, sendto, arg4),
                expected,
                "sendto with address {arg4:#x}"
            );
        }
        for call in [libc::SYS_connect, libc::SYS_sendmsg, libc::SYS_listen] {
            assert_eq!(
                run(&program, AUDIT_ARCH_X86_64, call as u32),
                libc::SECCOMP_RET_USER_NOTIF,
                "call {call}"
            );
        }
        assert_eq!(
            run_with_arg4(&program, AUDIT_ARCH_X86_64, libc::SYS_read as u32, 0x1000),
            libc::SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn recvfrom_notifies_only_when_it_asks_for_the_source_and_sendto_still_does() {
        let calls = [
            libc::SYS_sendto,
            libc::SYS_getpeername,
            libc::SYS_recvfrom,
            libc::SYS_listen,
        ];
        let program = program(&calls);
        for call in [libc::SYS_sendto, libc::SYS_recvfrom] {
            for (arg4, expected) in [
                (0, libc::SECCOMP_RET_ALLOW),
                (0x7ffd_1234_5678, libc::SECCOMP_RET_USER_NOTIF),
                (0x1000, libc::SECCOMP_RET_USER_NOTIF),
                (0x7fff_0000_0000, libc::SECCOMP_RET_USER_NOTIF),
            ] {
                assert_eq!(
                    run_with_arg4(&program, AUDIT_ARCH_X86_64, call as u32, arg4),
                    expected,
                    "call {call} with address {arg4:#x}"
                );
            }
        }
        for call in [libc::SYS_getpeername, libc::SYS_listen] {
            assert_eq!(
                run(&program, AUDIT_ARCH_X86_64, call as u32),
                libc::SECCOMP_RET_USER_NOTIF,
                "call {call}"
            );
        }
        for call in [libc::SYS_recvmsg, libc::SYS_read] {
            assert_eq!(
                run_with_arg4(&program, AUDIT_ARCH_X86_64, call as u32, 0x1000),
                libc::SECCOMP_RET_ALLOW
            );
        }
    }

    #[test]
    fn connect_is_intercepted_for_unix_streams_alone() {
        let mut config = ResolvedConfig::default();
        config.feature.network.outgoing.tcp = false;
        config.feature.network.outgoing.udp = false;
        assert!(!intercepted_calls(&config).contains(&libc::SYS_connect));
        config.feature.network.outgoing.unix_streams = vec!["^/run/app\\.sock$".into()];
        assert!(intercepted_calls(&config).contains(&libc::SYS_connect));
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
