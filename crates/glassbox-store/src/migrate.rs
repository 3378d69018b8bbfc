//! Migrations: numbered SQL files under `migrations/<backend>/`, embedded into the binary,
//! applied in order and recorded with a checksum. An applied migration whose file changed is
//! refused, never re-applied.

use crate::backend::StoreError;

/// One embedded migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the file's text, lower-case hex.
    pub fn checksum(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.sql.as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The file's statements, split on `;` at the end of a line; `--` comment lines dropped.
    pub fn statements(&self) -> impl Iterator<Item = String> + '_ {
        let mut statements = Vec::new();
        let mut current = String::new();
        for line in self.sql.lines() {
            if line.trim_start().starts_with("--") {
                continue;
            }
            current.push_str(line);
            current.push('\n');
            if line.trim_end().ends_with(';') {
                let statement = current.trim().trim_end_matches(';').trim().to_owned();
                if !statement.is_empty() {
                    statements.push(statement);
                }
                current.clear();
            }
        }
        let rest = current.trim();
        if !rest.is_empty() {
            statements.push(rest.to_owned());
        }
        statements.into_iter()
    }
}

/// A migration as the database recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: u32,
    pub name: String,
    pub checksum: String,
}

/// The migrations still to apply, in order; an error when an applied one was edited.
pub fn pending<'a>(embedded: &'a [Migration], applied: &[AppliedMigration]) -> Result<Vec<&'a Migration>, StoreError> {
    let mut pending = Vec::new();
    for migration in embedded {
        match applied.iter().find(|record| record.version == migration.version) {
            Some(record) => {
                let current = migration.checksum();
                if record.checksum != current {
                    return Err(StoreError::MigrationEdited {
                        version: migration.version,
                        name: migration.name.to_owned(),
                        applied: record.checksum.clone(),
                        current,
                    });
                }
            }
            None => pending.push(migration),
        }
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Migration = Migration { version: 1, name: "first", sql: "-- a comment\nCREATE TABLE a (x Int32);\nCREATE TABLE b\n(y Int32);\n" };
    const SECOND: Migration = Migration { version: 2, name: "second", sql: "CREATE TABLE c (z Int32)" };

    #[test]
    fn splits_statements_and_drops_comments() {
        let statements: Vec<String> = FIRST.statements().collect();
        assert_eq!(statements, ["CREATE TABLE a (x Int32)", "CREATE TABLE b\n(y Int32)"]);
        assert_eq!(SECOND.statements().count(), 1);
    }

    #[test]
    fn pending_skips_applied_and_refuses_edited() {
        let applied = [AppliedMigration { version: 1, name: "first".into(), checksum: FIRST.checksum() }];
        let todo = pending(&[FIRST, SECOND], &applied).unwrap();
        assert_eq!(todo, [&SECOND]);
        let edited = [AppliedMigration { version: 1, name: "first".into(), checksum: "0".repeat(64) }];
        assert!(matches!(pending(&[FIRST, SECOND], &edited), Err(StoreError::MigrationEdited { version: 1, .. })));
    }
}
