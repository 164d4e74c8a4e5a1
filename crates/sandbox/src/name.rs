//! Sandbox names: what is allowed, so every derived name (namespace, hostname, state directory,
//! DNS label) stays valid.

use crate::SandboxError;

/// The longest sandbox name; `mirrord-sb-NAME-db` and the hostname stay well inside their limits.
pub const MAX_NAME_LEN: usize = 20;

/// Checks that `name` is 1 to 20 characters of `a-z`, `0-9` and `-`, starting and ending with a
/// letter or digit (a DNS label, so it can be the pod's hostname).
pub fn validate_name(name: &str) -> Result<(), SandboxError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 20 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("only lowercase letters, digits and `-` are allowed")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it must start and end with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SandboxError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: Result<(), &str>) {
        let actual = validate_name(name).map_err(|error| match error {
            SandboxError::InvalidName { reason, .. } => reason,
            other => panic!("unexpected error {other}"),
        });
        assert_eq!(actual, expected, "name {name:?}");
    }

    #[test]
    fn accepts_dns_labels_up_to_twenty_characters() {
        check("demo", Ok(()));
        check("a", Ok(()));
        check("7", Ok(()));
        check("pod-1-db", Ok(()));
        check("abcdefghij0123456789", Ok(()));
    }

    #[test]
    fn rejects_everything_else_with_the_broken_rule() {
        check("", Err("it is empty"));
        check(
            "abcdefghij0123456789x",
            Err("it is longer than 20 characters"),
        );
        check(
            "Demo",
            Err("only lowercase letters, digits and `-` are allowed"),
        );
        check(
            "my_pod",
            Err("only lowercase letters, digits and `-` are allowed"),
        );
        check(
            "../etc",
            Err("only lowercase letters, digits and `-` are allowed"),
        );
        check(
            "pod.svc",
            Err("only lowercase letters, digits and `-` are allowed"),
        );
        check(
            "héllo",
            Err("only lowercase letters, digits and `-` are allowed"),
        );
        check("-pod", Err("it must start and end with a letter or digit"));
        check("pod-", Err("it must start and end with a letter or digit"));
    }

    #[test]
    fn message_names_the_sandbox_and_the_rule() {
        let error = validate_name("Bad").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid sandbox name `Bad`: only lowercase letters, digits and `-` are allowed"
        );
    }
}
