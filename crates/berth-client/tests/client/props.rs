//! Properties of scope merging and cache keys.

use berth_client::auth::{CacheKey, DeleteAction, Operation, relevant_hint, request_scopes};
use berth_client::credentials::Credential;
use berth_core::reference::Registry;
use berth_core::{RepositoryName, ResourceType, Scope, Scopes};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = RepositoryName> {
    "[a-z]{1,4}(/[a-z]{1,4})?".prop_map(|s| RepositoryName::parse(&s).unwrap())
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        name().prop_map(Operation::Pull),
        (name(), proptest::option::of(name())).prop_map(|(r, m)| Operation::Push(r, m)),
        name().prop_map(Operation::Delete),
        Just(Operation::Catalog),
        Just(Operation::Ping),
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    let actions = proptest::sample::subsequence(vec!["pull", "push", "delete", "*"], 1..=3);
    let repo = (name(), actions.clone())
        .prop_map(|(n, a)| format!("repository:{n}:{}", a.join(",")).parse().unwrap());
    let registry = Just(Scope::catalog());
    prop_oneof![4 => repo, 1 => registry]
}

fn scopes() -> impl Strategy<Value = Vec<Scope>> {
    proptest::collection::vec(scope(), 0..6)
}

fn delete_action() -> impl Strategy<Value = DeleteAction> {
    prop_oneof![Just(DeleteAction::Delete), Just(DeleteAction::All)]
}

proptest! {
    #[test]
    fn merge_is_idempotent(op in operation(), hint in scopes(), d in delete_action(), anonymous: bool) {
        let hint: Scopes = hint.into_iter().collect();
        let once = request_scopes(&op, d, &hint, anonymous);
        // Merging the same hint again, or the result into itself, changes nothing.
        let mut again = once.clone();
        again.merge(&relevant_hint(&op, &hint));
        if anonymous {
            again = berth_client::auth::anonymous_subset(&again);
        }
        prop_assert_eq!(&again, &once);
        prop_assert_eq!(request_scopes(&op, d, &once, anonymous), once.clone());
    }

    #[test]
    fn the_hint_never_adds_a_foreign_repository(op in operation(), hint in scopes(), d in delete_action(), anonymous: bool) {
        let hint: Scopes = hint.into_iter().collect();
        let got = request_scopes(&op, d, &hint, anonymous);
        let own = op.scopes_with(d);
        for scope in got.iter() {
            match scope.resource_type() {
                ResourceType::Repository => prop_assert!(
                    op.repositories().iter().any(|r| r.as_str() == scope.name()),
                    "{} is foreign to {:?}", scope, op
                ),
                _ => prop_assert!(own.get(scope.resource_type(), scope.name()).is_some(),
                    "{} did not come from {:?}", scope, op),
            }
            if anonymous && *scope.resource_type() == ResourceType::Repository {
                prop_assert_eq!(scope.actions().to_string(), "pull");
            }
        }
        if matches!(op, Operation::Catalog | Operation::Ping) {
            prop_assert_eq!(got, op.scopes());
        }
    }

    #[test]
    fn cache_keys_ignore_scope_order(list in scopes(), seed: u64) {
        let registry = Registry::parse("r.example:5000").unwrap();
        let forward: Scopes = list.iter().cloned().collect();
        let mut shuffled = list.clone();
        // A deterministic permutation from the seed.
        let len = shuffled.len().max(1);
        shuffled.rotate_left((seed as usize) % len);
        shuffled.reverse();
        let backward: Scopes = shuffled.into_iter().collect();
        let key = |s: &Scopes| CacheKey::new(&registry, "https://auth/token", Some("svc"), None, s);
        prop_assert_eq!(key(&forward), key(&backward));
    }

    #[test]
    fn cache_keys_differ_by_identity(
        (u1, p1) in ("[a-z]{1,6}", "[ -~]{1,12}"),
        (u2, p2) in ("[a-z]{1,6}", "[ -~]{1,12}"),
        list in scopes(),
    ) {
        prop_assume!((&u1, &p1) != (&u2, &p2));
        let registry = Registry::parse("r.example").unwrap();
        let scopes: Scopes = list.into_iter().collect();
        let a = Credential::Basic { username: u1, password: p1.clone() };
        let b = Credential::Basic { username: u2, password: p2 };
        let key = |c: Option<&Credential>| CacheKey::new(&registry, "https://auth/token", Some("svc"), c, &scopes);
        prop_assert_ne!(key(Some(&a)), key(Some(&b)));
        prop_assert_ne!(key(Some(&a)), key(None));
        let refresh = Credential::IdentityToken(p1.clone());
        prop_assert_ne!(key(Some(&a)), key(Some(&refresh)));
        // The secret never appears in the key.
        prop_assume!(p1.len() >= 4);
        let shown = format!("{:?}", key(Some(&a)));
        prop_assert!(!shown.contains(&p1));
    }
}
