//! [`CheckpointLocation`]: where a savepoint or a checkpoint is (to restore from) or
//! goes (a savepoint's target): a local directory or an object-store URL.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Schemes `object_store::parse_url` knows (the runtime parses the URL for real when
/// it opens the store).
pub(crate) const KNOWN_SCHEMES: &[&str] = &[
    "file", "memory", "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http", "https",
];

/// A local directory or an object-store URL (`s3://bucket/path`, `file:///dir`,
/// `gs://...`; credentials from the environment, as for the checkpoint storage).
/// Built from whatever names one: a `PathBuf`, a `&Path`, or a string, which is a
/// URL when it starts with `scheme://` and a local path otherwise. A URL is checked
/// when it is used: [`validate`](Self::validate) names a bad one.
///
/// ```
/// use std::path::Path;
/// use flink_core::checkpoint::CheckpointLocation;
///
/// let local = CheckpointLocation::from(Path::new("/var/lib/savepoints"));
/// assert_eq!(local.as_directory(), Some(Path::new("/var/lib/savepoints")));
/// let s3 = CheckpointLocation::from("s3://bucket/savepoints");
/// assert_eq!(s3.join("savepoint-1").to_string(), "s3://bucket/savepoints/savepoint-1");
/// assert!(s3.validate().is_ok());
/// assert!(CheckpointLocation::from("ftp://host/x").validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckpointLocation {
    /// A directory of the local file system.
    Directory(PathBuf),
    /// A URL understood by the `object_store` crate.
    Url(String),
}

impl CheckpointLocation {
    /// The local directory, for a [`Directory`](Self::Directory) location.
    pub fn as_directory(&self) -> Option<&Path> {
        match self {
            Self::Directory(dir) => Some(dir),
            Self::Url(_) => None,
        }
    }

    /// The location for printing, as `Path::display` (it is `Display` itself; this
    /// keeps code written for a `PathBuf` location compiling).
    pub fn display(&self) -> &Self {
        self
    }

    /// The location `child` inside this one.
    pub fn join(&self, child: &str) -> Self {
        match self {
            Self::Directory(dir) => Self::Directory(dir.join(child)),
            Self::Url(url) => Self::Url(format!("{}/{child}", url.trim_end_matches('/'))),
        }
    }

    /// Checks that it can name a location: a non-empty path, or a URL of a scheme
    /// the object stores know.
    ///
    /// # Errors
    /// [`ConfigError::InvalidLocation`] naming the location and what is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason: String| {
            Err(ConfigError::InvalidLocation {
                location: self.to_string(),
                reason,
            })
        };
        match self {
            Self::Directory(dir) if dir.as_os_str().is_empty() => bad("the path is empty".into()),
            Self::Directory(_) => Ok(()),
            Self::Url(url) => match url.split_once("://") {
                Some((scheme, _)) if KNOWN_SCHEMES.contains(&scheme) => Ok(()),
                Some((scheme, _)) => bad(format!("unknown URL scheme '{scheme}'")),
                None => bad("not a URL (scheme://...)".into()),
            },
        }
    }
}

impl fmt::Display for CheckpointLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "{}", dir.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

/// A string names a URL when it starts with `scheme://` (a scheme being a letter
/// followed by letters, digits, `+`, `-` or `.`), else a local path.
fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

impl From<&str> for CheckpointLocation {
    fn from(s: &str) -> Self {
        if is_url(s) {
            Self::Url(s.to_string())
        } else {
            Self::Directory(PathBuf::from(s))
        }
    }
}

impl From<String> for CheckpointLocation {
    fn from(s: String) -> Self {
        if is_url(&s) {
            Self::Url(s)
        } else {
            Self::Directory(PathBuf::from(s))
        }
    }
}

impl From<&String> for CheckpointLocation {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<PathBuf> for CheckpointLocation {
    fn from(path: PathBuf) -> Self {
        Self::Directory(path)
    }
}

impl From<&PathBuf> for CheckpointLocation {
    fn from(path: &PathBuf) -> Self {
        Self::Directory(path.clone())
    }
}

impl From<&Path> for CheckpointLocation {
    fn from(path: &Path) -> Self {
        Self::Directory(path.to_path_buf())
    }
}

impl From<&CheckpointLocation> for CheckpointLocation {
    fn from(location: &CheckpointLocation) -> Self {
        location.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_urls_only_with_a_scheme() {
        assert_eq!(
            CheckpointLocation::from("s3://b/p"),
            CheckpointLocation::Url("s3://b/p".into())
        );
        assert_eq!(
            CheckpointLocation::from("file:///tmp/x".to_string()),
            CheckpointLocation::Url("file:///tmp/x".into())
        );
        for path in ["/tmp/x", "relative/dir", "C:\\sp", "a b://c"] {
            assert_eq!(
                CheckpointLocation::from(path),
                CheckpointLocation::Directory(path.into()),
                "{path}"
            );
        }
    }

    #[test]
    fn bad_locations_are_named() {
        let err = CheckpointLocation::from("ftp://host/x")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ftp://host/x") && err.contains("unknown URL scheme 'ftp'"),
            "{err}"
        );
        assert!(CheckpointLocation::from("").validate().is_err());
        assert!(
            CheckpointLocation::from("s3://bucket/sp")
                .validate()
                .is_ok()
        );
        assert_eq!(
            CheckpointLocation::from("s3://bucket/sp/").join("savepoint-1"),
            CheckpointLocation::Url("s3://bucket/sp/savepoint-1".into())
        );
    }
}
