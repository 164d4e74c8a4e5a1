//! Errors as data: what a remote operation failed with, carried in responses and events and turned back into
//! an errno (or a `getaddrinfo` `EAI_*` value) by the layer.

use std::{fmt, io};

use serde::{Deserialize, Serialize};

/// The result of a remote operation.
pub type RemoteResult<T> = Result<T, RemoteError>;

/// Why a remote operation failed: a code the layer turns into an errno, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// What kind of failure; decides the errno the user process sees.
    pub code: ErrorCode,
    /// Details for logs and for the CLI or IDE (for example the path or address involved).
    pub message: String,
}

impl RemoteError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The error every pending and later remote call gets once the agent connection is gone.
    pub fn agent_lost(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AgentLost, message)
    }

    /// The errno the user process should see; see [`ErrorCode::errno`].
    pub fn errno(&self) -> i32 {
        self.code.errno()
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for RemoteError {}

/// Keeps the OS error code when there is one, so the errno survives the trip.
impl From<&io::Error> for RemoteError {
    fn from(error: &io::Error) -> Self {
        Self::new(ErrorCode::from(error), error.to_string())
    }
}

/// For code that reports remote failures through `std::io` (the CLI, the intproxy).
impl From<RemoteError> for io::Error {
    fn from(error: RemoteError) -> Self {
        let kind = io::Error::from_raw_os_error(error.errno()).kind();
        io::Error::new(kind, error)
    }
}

/// What kind of failure, with errno-like names.
///
/// The wire carries the variant, not a number, so codes mean the same on every platform. Variants may only be
/// appended (see the crate docs on compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// `ENOENT`: no such file or directory.
    NotFound,
    /// `EACCES`: permission denied.
    PermissionDenied,
    /// `EPERM`: operation not permitted.
    OperationNotPermitted,
    /// `EEXIST`: the file exists.
    AlreadyExists,
    /// `ENOTDIR`: a path component is not a directory.
    NotADirectory,
    /// `EISDIR`: the path is a directory.
    IsADirectory,
    /// `ENOTEMPTY`: the directory is not empty.
    DirectoryNotEmpty,
    /// `EINVAL`: an invalid argument.
    InvalidInput,
    /// `EBADF`: the handle is not open (or not open for this operation).
    BadHandle,
    /// `EMFILE`: too many open files in the agent.
    TooManyOpenFiles,
    /// `ENAMETOOLONG`: a path or name is too long.
    NameTooLong,
    /// `ELOOP`: too many levels of symbolic links, or `nofollow` met a link.
    TooManySymlinks,
    /// `EROFS`: read-only file system.
    ReadOnlyFilesystem,
    /// `ENOSPC`: no space left on the device.
    NoSpace,
    /// `EXDEV`: a rename across file systems.
    CrossesDevices,
    /// `EBUSY`: the resource is busy.
    Busy,
    /// `EFBIG`: the file is too large.
    FileTooLarge,
    /// `ENOMEM`: out of memory (`EAI_MEMORY` for DNS).
    OutOfMemory,
    /// `EAGAIN`: the operation would block.
    WouldBlock,
    /// `EINTR`: interrupted.
    Interrupted,
    /// `EPIPE`: the other end is closed.
    BrokenPipe,
    /// `ECONNREFUSED`: the connection was refused.
    ConnectionRefused,
    /// `ECONNRESET`: the peer reset the connection.
    ConnectionReset,
    /// `ECONNABORTED`: the connection was aborted.
    ConnectionAborted,
    /// `ENOTCONN`: the socket is not connected.
    NotConnected,
    /// `EHOSTUNREACH`: no route to the host.
    HostUnreachable,
    /// `ENETUNREACH`: the network is unreachable.
    NetworkUnreachable,
    /// `ENETDOWN`: the network is down.
    NetworkDown,
    /// `ETIMEDOUT`: timed out.
    TimedOut,
    /// `EADDRINUSE`: the address is in use.
    AddrInUse,
    /// `EADDRNOTAVAIL`: the address is not available.
    AddrNotAvailable,
    /// `EAFNOSUPPORT`: the address family is not supported (`EAI_FAMILY` for DNS).
    AddressFamilyNotSupported,
    /// `ESOCKTNOSUPPORT`: the socket type is not supported (`EAI_SOCKTYPE` for DNS).
    SocketTypeNotSupported,
    /// `EMSGSIZE`: the message is too long.
    MessageTooLong,
    /// DNS `EAI_NONAME`: the name (or service) is not known.
    NoSuchName,
    /// DNS `EAI_AGAIN`: a temporary failure in name resolution.
    TryAgain,
    /// DNS `EAI_FAIL`: a non-recoverable failure in name resolution.
    DnsFailure,
    /// DNS `EAI_SERVICE`: the service is not known for the socket type.
    UnknownService,
    /// `ENOSYS`: the agent does not implement this operation.
    Unsupported,
    /// `EOPNOTSUPP`: the operation is not supported on this kind of object.
    OperationNotSupported,
    /// `EIO`: any other input/output failure.
    Io,
    /// `EPROTO`: the peer broke the protocol (for example a response of the wrong kind).
    Protocol,
    /// `EIO`: the agent connection is gone; every pending and later remote call fails with this.
    AgentLost,
    /// Any other errno, as its number on the agent's (Linux) side.
    Other(i32),
}

impl ErrorCode {
    /// The errno value the user process should see (Linux numbers on Linux; the constants come from `libc`).
    pub fn errno(self) -> i32 {
        match self {
            Self::NotFound => libc::ENOENT,
            Self::PermissionDenied => libc::EACCES,
            Self::OperationNotPermitted => libc::EPERM,
            Self::AlreadyExists => libc::EEXIST,
            Self::NotADirectory => libc::ENOTDIR,
            Self::IsADirectory => libc::EISDIR,
            Self::DirectoryNotEmpty => libc::ENOTEMPTY,
            Self::InvalidInput => libc::EINVAL,
            Self::BadHandle => libc::EBADF,
            Self::TooManyOpenFiles => libc::EMFILE,
            Self::NameTooLong => libc::ENAMETOOLONG,
            Self::TooManySymlinks => libc::ELOOP,
            Self::ReadOnlyFilesystem => libc::EROFS,
            Self::NoSpace => libc::ENOSPC,
            Self::CrossesDevices => libc::EXDEV,
            Self::Busy => libc::EBUSY,
            Self::FileTooLarge => libc::EFBIG,
            Self::OutOfMemory => libc::ENOMEM,
            Self::WouldBlock | Self::TryAgain => libc::EAGAIN,
            Self::Interrupted => libc::EINTR,
            Self::BrokenPipe => libc::EPIPE,
            Self::ConnectionRefused => libc::ECONNREFUSED,
            Self::ConnectionReset => libc::ECONNRESET,
            Self::ConnectionAborted => libc::ECONNABORTED,
            Self::NotConnected => libc::ENOTCONN,
            Self::HostUnreachable => libc::EHOSTUNREACH,
            Self::NetworkUnreachable => libc::ENETUNREACH,
            Self::NetworkDown => libc::ENETDOWN,
            Self::TimedOut => libc::ETIMEDOUT,
            Self::AddrInUse => libc::EADDRINUSE,
            Self::AddrNotAvailable => libc::EADDRNOTAVAIL,
            Self::AddressFamilyNotSupported => libc::EAFNOSUPPORT,
            Self::SocketTypeNotSupported => libc::ESOCKTNOSUPPORT,
            Self::MessageTooLong => libc::EMSGSIZE,
            // getaddrinfo reports these through its return value; an errno is only a fallback.
            Self::NoSuchName | Self::UnknownService => libc::ENOENT,
            Self::DnsFailure => libc::EIO,
            Self::Unsupported => libc::ENOSYS,
            Self::OperationNotSupported => libc::EOPNOTSUPP,
            Self::Io | Self::AgentLost => libc::EIO,
            Self::Protocol => libc::EPROTO,
            Self::Other(errno) => errno,
        }
    }

    /// The code for an errno value; numbers without a name become [`ErrorCode::Other`].
    pub fn from_errno(errno: i32) -> Self {
        match errno {
            libc::ENOENT => Self::NotFound,
            libc::EACCES => Self::PermissionDenied,
            libc::EPERM => Self::OperationNotPermitted,
            libc::EEXIST => Self::AlreadyExists,
            libc::ENOTDIR => Self::NotADirectory,
            libc::EISDIR => Self::IsADirectory,
            libc::ENOTEMPTY => Self::DirectoryNotEmpty,
            libc::EINVAL => Self::InvalidInput,
            libc::EBADF => Self::BadHandle,
            libc::EMFILE => Self::TooManyOpenFiles,
            libc::ENAMETOOLONG => Self::NameTooLong,
            libc::ELOOP => Self::TooManySymlinks,
            libc::EROFS => Self::ReadOnlyFilesystem,
            libc::ENOSPC => Self::NoSpace,
            libc::EXDEV => Self::CrossesDevices,
            libc::EBUSY => Self::Busy,
            libc::EFBIG => Self::FileTooLarge,
            libc::ENOMEM => Self::OutOfMemory,
            libc::EAGAIN => Self::WouldBlock,
            libc::EINTR => Self::Interrupted,
            libc::EPIPE => Self::BrokenPipe,
            libc::ECONNREFUSED => Self::ConnectionRefused,
            libc::ECONNRESET => Self::ConnectionReset,
            libc::ECONNABORTED => Self::ConnectionAborted,
            libc::ENOTCONN => Self::NotConnected,
            libc::EHOSTUNREACH => Self::HostUnreachable,
            libc::ENETUNREACH => Self::NetworkUnreachable,
            libc::ENETDOWN => Self::NetworkDown,
            libc::ETIMEDOUT => Self::TimedOut,
            libc::EADDRINUSE => Self::AddrInUse,
            libc::EADDRNOTAVAIL => Self::AddrNotAvailable,
            libc::EAFNOSUPPORT => Self::AddressFamilyNotSupported,
            libc::ESOCKTNOSUPPORT => Self::SocketTypeNotSupported,
            libc::EMSGSIZE => Self::MessageTooLong,
            libc::ENOSYS => Self::Unsupported,
            libc::EOPNOTSUPP => Self::OperationNotSupported,
            libc::EIO => Self::Io,
            libc::EPROTO => Self::Protocol,
            other => Self::Other(other),
        }
    }

    /// The `getaddrinfo` return value for this code (glibc numbers on Linux, e.g. `EAI_NONAME` = -2).
    ///
    /// Codes without a DNS meaning give `EAI_SYSTEM`: the caller then sets errno to [`ErrorCode::errno`].
    pub fn eai(self) -> i32 {
        match self {
            Self::NoSuchName => libc::EAI_NONAME,
            Self::TryAgain | Self::WouldBlock => libc::EAI_AGAIN,
            Self::DnsFailure => libc::EAI_FAIL,
            Self::UnknownService => libc::EAI_SERVICE,
            Self::AddressFamilyNotSupported => libc::EAI_FAMILY,
            Self::SocketTypeNotSupported => libc::EAI_SOCKTYPE,
            Self::InvalidInput => libc::EAI_BADFLAGS,
            Self::OutOfMemory => libc::EAI_MEMORY,
            _ => libc::EAI_SYSTEM,
        }
    }

    /// The code for a `getaddrinfo` return value; `errno` is only read for `EAI_SYSTEM`.
    pub fn from_eai(eai: i32, errno: i32) -> Self {
        match eai {
            libc::EAI_NONAME | libc::EAI_NODATA => Self::NoSuchName,
            libc::EAI_AGAIN => Self::TryAgain,
            libc::EAI_FAIL => Self::DnsFailure,
            libc::EAI_SERVICE => Self::UnknownService,
            libc::EAI_FAMILY => Self::AddressFamilyNotSupported,
            libc::EAI_SOCKTYPE => Self::SocketTypeNotSupported,
            libc::EAI_BADFLAGS | libc::EAI_OVERFLOW => Self::InvalidInput,
            libc::EAI_MEMORY => Self::OutOfMemory,
            libc::EAI_SYSTEM => Self::from_errno(errno),
            _ => Self::DnsFailure,
        }
    }

    /// A short lowercase description, as used by `Display`.
    pub fn description(self) -> &'static str {
        match self {
            Self::NotFound => "no such file or directory",
            Self::PermissionDenied => "permission denied",
            Self::OperationNotPermitted => "operation not permitted",
            Self::AlreadyExists => "file exists",
            Self::NotADirectory => "not a directory",
            Self::IsADirectory => "is a directory",
            Self::DirectoryNotEmpty => "directory not empty",
            Self::InvalidInput => "invalid argument",
            Self::BadHandle => "bad file descriptor",
            Self::TooManyOpenFiles => "too many open files",
            Self::NameTooLong => "file name too long",
            Self::TooManySymlinks => "too many levels of symbolic links",
            Self::ReadOnlyFilesystem => "read-only file system",
            Self::NoSpace => "no space left on device",
            Self::CrossesDevices => "invalid cross-device link",
            Self::Busy => "device or resource busy",
            Self::FileTooLarge => "file too large",
            Self::OutOfMemory => "out of memory",
            Self::WouldBlock => "resource temporarily unavailable",
            Self::Interrupted => "interrupted system call",
            Self::BrokenPipe => "broken pipe",
            Self::ConnectionRefused => "connection refused",
            Self::ConnectionReset => "connection reset by peer",
            Self::ConnectionAborted => "connection aborted",
            Self::NotConnected => "socket is not connected",
            Self::HostUnreachable => "no route to host",
            Self::NetworkUnreachable => "network is unreachable",
            Self::NetworkDown => "network is down",
            Self::TimedOut => "timed out",
            Self::AddrInUse => "address already in use",
            Self::AddrNotAvailable => "cannot assign requested address",
            Self::AddressFamilyNotSupported => "address family not supported",
            Self::SocketTypeNotSupported => "socket type not supported",
            Self::MessageTooLong => "message too long",
            Self::NoSuchName => "name or service not known",
            Self::TryAgain => "temporary failure in name resolution",
            Self::DnsFailure => "non-recoverable failure in name resolution",
            Self::UnknownService => "service not supported for socket type",
            Self::Unsupported => "operation not implemented by the agent",
            Self::OperationNotSupported => "operation not supported",
            Self::Io => "input/output error",
            Self::Protocol => "protocol error",
            Self::AgentLost => "the mirrord agent connection was lost",
            Self::Other(_) => "os error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(errno) => write!(f, "os error {errno}"),
            code => f.write_str(code.description()),
        }
    }
}

/// Uses the OS error code when there is one, else the error kind.
impl From<&io::Error> for ErrorCode {
    fn from(error: &io::Error) -> Self {
        if let Some(errno) = error.raw_os_error() {
            return Self::from_errno(errno);
        }
        use io::ErrorKind as Kind;
        match error.kind() {
            Kind::NotFound => Self::NotFound,
            Kind::PermissionDenied => Self::PermissionDenied,
            Kind::AlreadyExists => Self::AlreadyExists,
            Kind::NotADirectory => Self::NotADirectory,
            Kind::IsADirectory => Self::IsADirectory,
            Kind::DirectoryNotEmpty => Self::DirectoryNotEmpty,
            Kind::InvalidInput | Kind::InvalidData | Kind::InvalidFilename => Self::InvalidInput,
            Kind::ReadOnlyFilesystem => Self::ReadOnlyFilesystem,
            Kind::StorageFull | Kind::QuotaExceeded => Self::NoSpace,
            Kind::CrossesDevices => Self::CrossesDevices,
            Kind::ResourceBusy => Self::Busy,
            Kind::FileTooLarge => Self::FileTooLarge,
            Kind::OutOfMemory => Self::OutOfMemory,
            Kind::WouldBlock => Self::WouldBlock,
            Kind::Interrupted => Self::Interrupted,
            Kind::BrokenPipe => Self::BrokenPipe,
            Kind::ConnectionRefused => Self::ConnectionRefused,
            Kind::ConnectionReset => Self::ConnectionReset,
            Kind::ConnectionAborted => Self::ConnectionAborted,
            Kind::NotConnected => Self::NotConnected,
            Kind::HostUnreachable => Self::HostUnreachable,
            Kind::NetworkUnreachable => Self::NetworkUnreachable,
            Kind::NetworkDown => Self::NetworkDown,
            Kind::TimedOut => Self::TimedOut,
            Kind::AddrInUse => Self::AddrInUse,
            Kind::AddrNotAvailable => Self::AddrNotAvailable,
            Kind::Unsupported => Self::Unsupported,
            _ => Self::Io,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant except `Other`, which is checked separately.
    const NAMED: &[ErrorCode] = &[
        ErrorCode::NotFound,
        ErrorCode::PermissionDenied,
        ErrorCode::OperationNotPermitted,
        ErrorCode::AlreadyExists,
        ErrorCode::NotADirectory,
        ErrorCode::IsADirectory,
        ErrorCode::DirectoryNotEmpty,
        ErrorCode::InvalidInput,
        ErrorCode::BadHandle,
        ErrorCode::TooManyOpenFiles,
        ErrorCode::NameTooLong,
        ErrorCode::TooManySymlinks,
        ErrorCode::ReadOnlyFilesystem,
        ErrorCode::NoSpace,
        ErrorCode::CrossesDevices,
        ErrorCode::Busy,
        ErrorCode::FileTooLarge,
        ErrorCode::OutOfMemory,
        ErrorCode::WouldBlock,
        ErrorCode::Interrupted,
        ErrorCode::BrokenPipe,
        ErrorCode::ConnectionRefused,
        ErrorCode::ConnectionReset,
        ErrorCode::ConnectionAborted,
        ErrorCode::NotConnected,
        ErrorCode::HostUnreachable,
        ErrorCode::NetworkUnreachable,
        ErrorCode::NetworkDown,
        ErrorCode::TimedOut,
        ErrorCode::AddrInUse,
        ErrorCode::AddrNotAvailable,
        ErrorCode::AddressFamilyNotSupported,
        ErrorCode::SocketTypeNotSupported,
        ErrorCode::MessageTooLong,
        ErrorCode::NoSuchName,
        ErrorCode::TryAgain,
        ErrorCode::DnsFailure,
        ErrorCode::UnknownService,
        ErrorCode::Unsupported,
        ErrorCode::OperationNotSupported,
        ErrorCode::Io,
        ErrorCode::Protocol,
        ErrorCode::AgentLost,
    ];

    /// Codes that share their errno with another, more common code, so `from_errno` cannot give them back.
    const ERRNO_ALIASES: &[ErrorCode] = &[
        ErrorCode::TryAgain,
        ErrorCode::NoSuchName,
        ErrorCode::UnknownService,
        ErrorCode::DnsFailure,
        ErrorCode::AgentLost,
    ];

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn errno_values_are_the_linux_numbers() {
        let expected = [
            (ErrorCode::NotFound, 2),
            (ErrorCode::OperationNotPermitted, 1),
            (ErrorCode::Io, 5),
            (ErrorCode::BadHandle, 9),
            (ErrorCode::WouldBlock, 11),
            (ErrorCode::PermissionDenied, 13),
            (ErrorCode::AlreadyExists, 17),
            (ErrorCode::NotADirectory, 20),
            (ErrorCode::IsADirectory, 21),
            (ErrorCode::InvalidInput, 22),
            (ErrorCode::Unsupported, 38),
            (ErrorCode::DirectoryNotEmpty, 39),
            (ErrorCode::TooManySymlinks, 40),
            (ErrorCode::AddrInUse, 98),
            (ErrorCode::ConnectionReset, 104),
            (ErrorCode::TimedOut, 110),
            (ErrorCode::ConnectionRefused, 111),
            (ErrorCode::HostUnreachable, 113),
            (ErrorCode::AgentLost, 5),
            (ErrorCode::Other(200), 200),
        ];
        for (code, errno) in expected {
            assert_eq!(code.errno(), errno, "{code:?}");
        }
        let eai = [
            (ErrorCode::InvalidInput, -1),
            (ErrorCode::NoSuchName, -2),
            (ErrorCode::TryAgain, -3),
            (ErrorCode::DnsFailure, -4),
            (ErrorCode::AddressFamilyNotSupported, -6),
            (ErrorCode::SocketTypeNotSupported, -7),
            (ErrorCode::UnknownService, -8),
            (ErrorCode::OutOfMemory, -10),
            (ErrorCode::AgentLost, -11),
        ];
        for (code, value) in eai {
            assert_eq!(code.eai(), value, "{code:?}");
        }
    }

    #[test]
    fn errno_round_trips_except_for_aliases() {
        for &code in NAMED {
            if ERRNO_ALIASES.contains(&code) {
                continue;
            }
            assert_eq!(ErrorCode::from_errno(code.errno()), code, "{code:?}");
        }
        assert_eq!(ErrorCode::from_errno(12345), ErrorCode::Other(12345));
        assert_eq!(ErrorCode::Other(12345).errno(), 12345);
    }

    #[test]
    fn dns_codes_round_trip_through_eai() {
        for &code in NAMED {
            let eai = code.eai();
            if eai == libc::EAI_SYSTEM {
                assert_eq!(
                    ErrorCode::from_eai(eai, code.errno()).errno(),
                    code.errno(),
                    "{code:?}"
                );
            } else if code != ErrorCode::WouldBlock {
                assert_eq!(ErrorCode::from_eai(eai, 0), code, "{code:?}");
            }
        }
    }

    #[test]
    fn io_errors_keep_their_os_code() {
        let error = io::Error::from_raw_os_error(libc::ENOTEMPTY);
        assert_eq!(ErrorCode::from(&error), ErrorCode::DirectoryNotEmpty);
        let remote = RemoteError::from(&error);
        assert_eq!(remote.errno(), libc::ENOTEMPTY);

        let error = io::Error::new(io::ErrorKind::ConnectionRefused, "nope");
        assert_eq!(
            RemoteError::from(&error),
            RemoteError::new(ErrorCode::ConnectionRefused, "nope")
        );
        let error = io::Error::other("strange");
        assert_eq!(ErrorCode::from(&error), ErrorCode::Io);
    }

    #[test]
    fn back_to_io_error_keeps_the_kind() {
        let error = io::Error::from(RemoteError::new(ErrorCode::NotFound, "/etc/app.yaml"));
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            error.to_string(),
            "no such file or directory: /etc/app.yaml"
        );
    }

    #[test]
    fn display_is_lowercase_and_has_no_trailing_period() {
        for &code in NAMED {
            let text = code.to_string();
            assert_eq!(text, text.to_lowercase(), "{code:?}");
            assert!(!text.ends_with('.'), "{code:?}");
        }
        assert_eq!(ErrorCode::Other(7).to_string(), "os error 7");
        assert_eq!(
            RemoteError::new(ErrorCode::Io, "").to_string(),
            "input/output error"
        );
    }
}
