//! Errors of the public API. Each kind has a stable number in the C API (`KrmxResult`).

use std::fmt;

use crate::proto::server::ActionError;
use crate::proto::MessageError;

/// What went wrong, as a category the host can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An argument is out of range or malformed (a bad host name, an empty type, …).
    InvalidArgument,
    /// A string is not valid UTF-8.
    InvalidUtf8,
    /// A payload is not valid JSON.
    InvalidJson,
    /// A message type starts with the reserved `krmx/` prefix.
    ReservedType,
    /// No user by that name.
    UnknownUser,
    /// The user exists but is not linked to a connection.
    UserNotLinked,
    /// A user by that name already exists.
    UserExists,
    /// The username does not meet the username rule.
    InvalidUsername,
    /// Not possible in the current status (sending before listening, closing twice, …).
    WrongStatus,
    /// No pending authentication request has that id.
    UnknownRequest,
    /// The operating system refused (the port is taken, the address is not local, …).
    Io,
    /// A configured limit is reached (the most users, …).
    LimitReached,
}

/// An error with a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<ActionError> for Error {
    fn from(e: ActionError) -> Self {
        let kind = match e {
            ActionError::WrongStatus { .. } => ErrorKind::WrongStatus,
            ActionError::UnknownUser(_) => ErrorKind::UnknownUser,
            ActionError::UserNotLinked(_) => ErrorKind::UserNotLinked,
            ActionError::UserExists(_) => ErrorKind::UserExists,
            ActionError::InvalidUsername(_) => ErrorKind::InvalidUsername,
            ActionError::ReservedType => ErrorKind::ReservedType,
            ActionError::UnknownRequest(_) => ErrorKind::UnknownRequest,
            ActionError::TooManyUsers(_) => ErrorKind::LimitReached,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<MessageError> for Error {
    fn from(e: MessageError) -> Self {
        let kind = match e {
            MessageError::ReservedType => ErrorKind::ReservedType,
            MessageError::InvalidPayload(_) => ErrorKind::InvalidJson,
        };
        Error::new(kind, e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
