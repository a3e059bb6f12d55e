//! Diagnostics: what is wrong with a user's object, and where.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in one object, naming the field as a path into the object
/// (`spec.rules[0].matches[1].path.value`) so a person can find and fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub field: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects diagnostics while walking an object.
#[derive(Default, Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Diagnostic::new(field, message));
    }

    /// Records the error of `result`, if any, at `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.push(field, message);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
