//! The event manifest: type name and schema version, `"<type name>@<version>"`.

/// An event manifest: the event type's name and its schema version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// The event type's name.
    pub type_name: String,
    /// The schema version (0 for a manifest without one).
    pub version: u32,
}

impl Manifest {
    /// A manifest of `type_name` at `version`.
    pub fn new(type_name: impl Into<String>, version: u32) -> Self {
        Manifest {
            type_name: type_name.into(),
            version,
        }
    }

    /// Reads a stored manifest: `"name@3"` is `name` at version 3; anything else (no `@`, or
    /// no number after the last one) is the whole string at version 0.
    pub fn parse(manifest: &str) -> Self {
        match manifest.rsplit_once('@') {
            Some((name, version)) => match version.parse::<u32>() {
                Ok(version) => Manifest::new(name, version),
                Err(_) => Manifest::new(manifest, 0),
            },
            None => Manifest::new(manifest, 0),
        }
    }
}

impl std::fmt::Display for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.type_name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::Manifest;

    #[test]
    fn round_trips_and_reads_legacy_manifests() {
        let m = Manifest::new("bank.AccountEvent", 2);
        assert_eq!(m.to_string(), "bank.AccountEvent@2");
        assert_eq!(Manifest::parse(&m.to_string()), m);
        assert_eq!(Manifest::parse("amount"), Manifest::new("amount", 0));
        assert_eq!(Manifest::parse(""), Manifest::new("", 0));
        assert_eq!(Manifest::parse("a@b@7"), Manifest::new("a@b", 7));
        assert_eq!(Manifest::parse("user@host"), Manifest::new("user@host", 0));
    }
}
