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

/// Defines [`ErrorCode`] from one table: each named variant once, with its errno and its
/// description. `shared` marks a code whose errno belongs to another, more common code (its errno
/// is only a fallback), so [`ErrorCode::from_errno`] never gives it back. `=> Other;` is where
/// `Other(i32)` sits on the wire: codes added later go below it (appended, as the crate's
/// compatibility rules say).
macro_rules! error_codes {
    (
        $(
            $(#[doc = $doc:literal])*
            $name:ident = $errno:ident $($shared:ident)?, $text:literal;
        )*
        => Other;
        $(
            $(#[doc = $later_doc:literal])*
            $later:ident = $later_errno:ident $($later_shared:ident)?, $later_text:literal;
        )*
    ) => {
        /// What kind of failure, with errno-like names.
        ///
        /// The wire carries the variant, not a number, so codes mean the same on every platform.
        /// Variants may only be appended (see the crate docs on compatibility).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $name,)*
            /// Any other errno, as its number on the agent's (Linux) side.
            Other(i32),
            $($(#[doc = $later_doc])* $later,)*
        }

        impl ErrorCode {
            /// Every variant but [`ErrorCode::Other`], in the order of the wire.
            pub const NAMED: &[ErrorCode] = &[$(Self::$name,)* $(Self::$later,)*];

            /// The errno value the user process should see (Linux numbers on Linux; the
            /// constants come from `libc`).
            pub fn errno(self) -> i32 {
                match self {
                    $(Self::$name => libc::$errno,)*
                    Self::Other(errno) => errno,
                    $(Self::$later => libc::$later_errno,)*
                }
            }

            /// Whether this code's errno belongs to another, more common code.
            pub fn errno_is_shared(self) -> bool {
                match self {
                    $(Self::$name => error_codes!(@shared $($shared)?),)*
                    Self::Other(_) => false,
                    $(Self::$later => error_codes!(@shared $($later_shared)?),)*
                }
            }

            /// A short lowercase description, as used by `Display`.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)*
                    Self::Other(_) => "os error",
                    $(Self::$later => $later_text,)*
                }
            }
        }
    };
    (@shared) => { false };
    (@shared shared) => { true };
}

error_codes! {
    /// `ENOENT`: no such file or directory.
    NotFound = ENOENT, "no such file or directory";
    /// `EACCES`: permission denied.
    PermissionDenied = EACCES, "permission denied";
    /// `EPERM`: operation not permitted.
    OperationNotPermitted = EPERM, "operation not permitted";
    /// `EEXIST`: the file exists.
    AlreadyExists = EEXIST, "file exists";
    /// `ENOTDIR`: a path component is not a directory.
    NotADirectory = ENOTDIR, "not a directory";
    /// `EISDIR`: the path is a directory.
    IsADirectory = EISDIR, "is a directory";
    /// `ENOTEMPTY`: the directory is not empty.
    DirectoryNotEmpty = ENOTEMPTY, "directory not empty";
    /// `EINVAL`: an invalid argument.
    InvalidInput = EINVAL, "invalid argument";
    /// `EBADF`: the handle is not open (or not open for this operation).
    BadHandle = EBADF, "bad file descriptor";
    /// `EMFILE`: too many open files in the agent.
    TooManyOpenFiles = EMFILE, "too many open files";
    /// `ENAMETOOLONG`: a path or name is too long.
    NameTooLong = ENAMETOOLONG, "file name too long";
    /// `ELOOP`: too many levels of symbolic links, or `nofollow` met a link.
    TooManySymlinks = ELOOP, "too many levels of symbolic links";
    /// `EROFS`: read-only file system.
    ReadOnlyFilesystem = EROFS, "read-only file system";
    /// `ENOSPC`: no space left on the device.
    NoSpace = ENOSPC, "no space left on device";
    /// `EXDEV`: a rename across file systems.
    CrossesDevices = EXDEV, "invalid cross-device link";
    /// `EBUSY`: the resource is busy.
    Busy = EBUSY, "device or resource busy";
    /// `EFBIG`: the file is too large.
    FileTooLarge = EFBIG, "file too large";
    /// `ENOMEM`: out of memory (`EAI_MEMORY` for DNS).
    OutOfMemory = ENOMEM, "out of memory";
    /// `EAGAIN`: the operation would block.
    WouldBlock = EAGAIN, "resource temporarily unavailable";
    /// `EINTR`: interrupted.
    Interrupted = EINTR, "interrupted system call";
    /// `EPIPE`: the other end is closed.
    BrokenPipe = EPIPE, "broken pipe";
    /// `ECONNREFUSED`: the connection was refused.
    ConnectionRefused = ECONNREFUSED, "connection refused";
    /// `ECONNRESET`: the peer reset the connection.
    ConnectionReset = ECONNRESET, "connection reset by peer";
    /// `ECONNABORTED`: the connection was aborted.
    ConnectionAborted = ECONNABORTED, "connection aborted";
    /// `ENOTCONN`: the socket is not connected.
    NotConnected = ENOTCONN, "socket is not connected";
    /// `EHOSTUNREACH`: no route to the host.
    HostUnreachable = EHOSTUNREACH, "no route to host";
    /// `ENETUNREACH`: the network is unreachable.
    NetworkUnreachable = ENETUNREACH, "network is unreachable";
    /// `ENETDOWN`: the network is down.
    NetworkDown = ENETDOWN, "network is down";
    /// `ETIMEDOUT`: timed out.
    TimedOut = ETIMEDOUT, "timed out";
    /// `EADDRINUSE`: the address is in use.
    AddrInUse = EADDRINUSE, "address already in use";
    /// `EADDRNOTAVAIL`: the address is not available.
    AddrNotAvailable = EADDRNOTAVAIL, "cannot assign requested address";
    /// `EAFNOSUPPORT`: the address family is not supported (`EAI_FAMILY` for DNS).
    AddressFamilyNotSupported = EAFNOSUPPORT, "address family not supported";
    /// `ESOCKTNOSUPPORT`: the socket type is not supported (`EAI_SOCKTYPE` for DNS).
    SocketTypeNotSupported = ESOCKTNOSUPPORT, "socket type not supported";
    /// `EMSGSIZE`: the message is too long.
    MessageTooLong = EMSGSIZE, "message too long";
    /// DNS `EAI_NONAME`: the name (or service) is not known.
    NoSuchName = ENOENT shared, "name or service not known";
    /// DNS `EAI_AGAIN`: a temporary failure in name resolution.
    TryAgain = EAGAIN shared, "temporary failure in name resolution";
    /// DNS `EAI_FAIL`: a non-recoverable failure in name resolution.
    DnsFailure = EIO shared, "non-recoverable failure in name resolution";
    /// DNS `EAI_SERVICE`: the service is not known for the socket type.
    UnknownService = ENOENT shared, "service not supported for socket type";
    /// `ENOSYS`: the agent does not implement this operation.
    Unsupported = ENOSYS, "operation not implemented by the agent";
    /// `EOPNOTSUPP`: the operation is not supported on this kind of object.
    OperationNotSupported = EOPNOTSUPP, "operation not supported";
    /// `EIO`: any other input/output failure.
    Io = EIO, "input/output error";
    /// `EPROTO`: the peer broke the protocol (for example a response of the wrong kind).
    Protocol = EPROTO, "protocol error";
    /// `EIO`: the agent connection is gone; every pending and later remote call fails with this.
    AgentLost = EIO shared, "the mirrord agent connection was lost";
    => Other;
}

impl ErrorCode {
    /// The code for an errno value; numbers without a named code become [`ErrorCode::Other`].
    pub fn from_errno(errno: i32) -> Self {
        Self::NAMED
            .iter()
            .copied()
            .find(|code| code.errno() == errno && !code.errno_is_shared())
            .unwrap_or(Self::Other(errno))
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

    const NAMED: &[ErrorCode] = ErrorCode::NAMED;

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
    fn errno_round_trips_except_for_shared_errnos() {
        for &code in NAMED {
            let back = ErrorCode::from_errno(code.errno());
            if code.errno_is_shared() {
                assert!(
                    back != code && !back.errno_is_shared() && back.errno() == code.errno(),
                    "{code:?} gives back {back:?}"
                );
            } else {
                assert_eq!(back, code, "{code:?}");
            }
        }
        let shared: Vec<ErrorCode> = NAMED
            .iter()
            .copied()
            .filter(|code| code.errno_is_shared())
            .collect();
        assert_eq!(
            shared,
            [
                ErrorCode::NoSuchName,
                ErrorCode::TryAgain,
                ErrorCode::DnsFailure,
                ErrorCode::UnknownService,
                ErrorCode::AgentLost
            ]
        );
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
