//! Which scopes to ask the token service for.
//!
//! The rule (PROTOCOL.md section 7): the scopes come from what the client is
//! about to do, never from the challenge alone. GHCR's `/v2/` challenge carries
//! the placeholder `repository:user/image:pull`, which no token service grants;
//! trusting it breaks `ping` and the catalog. So the challenge's `scope` is a
//! hint, merged only where it names a repository the operation itself names.
//!
//! | operation | scopes |
//! |---|---|
//! | `Pull(r)` | `repository:r:pull` |
//! | `Push(r, Some(s))` | `repository:r:pull,push repository:s:pull` |
//! | `Delete(r)` | `repository:r:delete` (or `repository:r:*` for Quay) |
//! | `Catalog` | `registry:catalog:*` |
//! | `Ping` | none |

use berth_core::{Action, RepositoryName, ResourceType, Scope, Scopes};

/// What a request is for; decides the scopes of its token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read manifests, blobs or tags of a repository.
    Pull(RepositoryName),
    /// Write to a repository, optionally mounting blobs from a second one.
    Push(RepositoryName, Option<RepositoryName>),
    /// Delete manifests or blobs of a repository.
    Delete(RepositoryName),
    /// List the registry's repositories (`/v2/_catalog`).
    Catalog,
    /// `GET /v2/`: no resource at all.
    Ping,
}

/// The word a delete asks for: `delete` (the spec, CNCF distribution, berth)
/// or `*` (Quay refuses `delete` and grants deletion only under `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeleteAction {
    /// `repository:<name>:delete`.
    #[default]
    Delete,
    /// `repository:<name>:*`.
    All,
}

impl Operation {
    /// The scopes the operation needs, asking `delete` for a delete.
    pub fn scopes(&self) -> Scopes {
        self.scopes_with(DeleteAction::Delete)
    }

    /// The scopes the operation needs, with `delete` spelled as given.
    pub fn scopes_with(&self, delete: DeleteAction) -> Scopes {
        match self {
            Self::Pull(repo) => Scopes::from_iter([Scope::for_repository(repo, Action::Pull)]),
            Self::Push(repo, mount_from) => {
                let mut scopes = Scopes::from_iter([
                    Scope::for_repository(repo, Action::Pull),
                    Scope::for_repository(repo, Action::Push),
                ]);
                if let Some(source) = mount_from {
                    scopes.insert(Scope::for_repository(source, Action::Pull));
                }
                scopes
            }
            Self::Delete(repo) => {
                let action = match delete {
                    DeleteAction::Delete => Action::Delete,
                    DeleteAction::All => Action::All,
                };
                Scopes::from_iter([Scope::for_repository(repo, action)])
            }
            Self::Catalog => Scopes::from_iter([Scope::catalog()]),
            Self::Ping => Scopes::new(),
        }
    }

    /// The repositories the operation names (a push's mount source included).
    pub fn repositories(&self) -> Vec<&RepositoryName> {
        match self {
            Self::Pull(repo) | Self::Delete(repo) => vec![repo],
            Self::Push(repo, source) => std::iter::once(repo).chain(source).collect(),
            Self::Catalog | Self::Ping => Vec::new(),
        }
    }
}

/// The scopes of the challenge's hint that name a repository the operation
/// names; everything else (GHCR's placeholder, a foreign repository, any
/// repository scope on a catalog or ping request) is dropped.
pub fn relevant_hint(operation: &Operation, hint: &Scopes) -> Scopes {
    let names = operation.repositories();
    hint.iter()
        .filter(|scope| {
            *scope.resource_type() == ResourceType::Repository
                && names.iter().any(|name| name.as_str() == scope.name())
        })
        .cloned()
        .collect()
}

/// Without a credential, only `pull` can be granted: repository scopes keep
/// `pull` (or lose their resource when they did not ask for it), others stay.
pub fn anonymous_subset(scopes: &Scopes) -> Scopes {
    scopes
        .iter()
        .filter_map(|scope| {
            if *scope.resource_type() != ResourceType::Repository {
                return Some(scope.clone());
            }
            if !scope.actions().contains(&Action::Pull) {
                return None;
            }
            Scope::new(
                ResourceType::Repository,
                scope.name(),
                std::iter::once(Action::Pull).collect(),
            )
            .ok()
        })
        .collect()
}

/// What to ask the token service for: the operation's scopes, merged with the
/// relevant part of the challenge's hint, reduced to `pull` when anonymous.
pub fn request_scopes(
    operation: &Operation,
    delete: DeleteAction,
    hint: &Scopes,
    anonymous: bool,
) -> Scopes {
    let mut scopes = operation.scopes_with(delete);
    scopes.merge(&relevant_hint(operation, hint));
    if anonymous {
        anonymous_subset(&scopes)
    } else {
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn scopes(s: &str) -> Scopes {
        Scopes::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn operation_scopes() {
        let a = repo("a/b");
        let cases = [
            (Operation::Pull(a.clone()), "repository:a/b:pull"),
            (
                Operation::Push(a.clone(), Some(repo("c"))),
                "repository:a/b:pull,push repository:c:pull",
            ),
            (Operation::Delete(a.clone()), "repository:a/b:delete"),
            (Operation::Catalog, "registry:catalog:*"),
            (Operation::Ping, ""),
        ];
        for (op, want) in cases {
            assert_eq!(op.scopes().to_string(), want, "{op:?}");
        }
        let star = Operation::Delete(a).scopes_with(DeleteAction::All);
        assert_eq!(star.to_string(), "repository:a/b:*");
    }

    #[test]
    fn ghcr_placeholder_is_dropped() {
        let hint = scopes("repository:user/image:pull");
        for op in [
            Operation::Ping,
            Operation::Catalog,
            Operation::Pull(repo("x/y")),
        ] {
            let got = request_scopes(&op, DeleteAction::Delete, &hint, false);
            assert_eq!(got, op.scopes(), "{op:?}");
        }
        let op = Operation::Pull(repo("user/image"));
        let hint = scopes("repository:user/image:pull,push");
        let got = request_scopes(&op, DeleteAction::Delete, &hint, false);
        assert_eq!(got.to_string(), "repository:user/image:pull,push");
    }

    #[test]
    fn anonymous_asks_pull_only() {
        let op = Operation::Push(repo("a"), Some(repo("b")));
        let got = request_scopes(&op, DeleteAction::Delete, &Scopes::new(), true);
        assert_eq!(got.to_string(), "repository:a:pull repository:b:pull");
        let op = Operation::Delete(repo("a"));
        let got = request_scopes(&op, DeleteAction::Delete, &Scopes::new(), true);
        assert!(got.is_empty());
        let got = request_scopes(
            &Operation::Catalog,
            DeleteAction::Delete,
            &Scopes::new(),
            true,
        );
        assert_eq!(got.to_string(), "registry:catalog:*");
    }
}
