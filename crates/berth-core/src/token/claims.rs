//! The claims of a registry JWT (Docker token spec `jwt.md`, RFC 7519).
//!
//! ```text
//! claims := {"iss", "sub"?, "aud": string | [string], "exp", "nbf"?, "iat"?, "jti"?,
//!            "access"?: [{"type", "name", "actions": [string]}],
//!            "berth_pat"?: integer, "berth_gen"?: integer, "berth_trust"?: [integer]}
//! ```
//!
//! `exp`, `nbf` and `iat` are JSON integers (CNCF distribution rejects floats).
//! Parsing is lenient where leniency grants nothing (an absent `sub` is
//! anonymous, an absent `access` grants nothing, an `access` entry that does not
//! parse is skipped) and strict where it would: a token without `exp` is refused.

use serde::{Deserialize, Deserializer, Serialize};

use super::json_err;
use crate::error::{ParseError, ParseErrorKind};
use crate::scope::{Action, ResourceType, Scope, Scopes};

/// The JWT `aud` claim: one string, or an array of them (RFC 7519 section 4.1.3).
/// CNCF distribution 2.8 only accepts the single string, so servers write `One`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "registry.example"`.
    One(String),
    /// `"aud": ["a", "b"]`.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `service` is among the audiences.
    pub fn contains(&self, service: &str) -> bool {
        match self {
            Self::One(aud) => aud == service,
            Self::Many(auds) => auds.iter().any(|aud| aud == service),
        }
    }
}

/// One entry of the JWT `access` claim: `{"type","name","actions":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessEntry {
    /// The resource type, e.g. `repository`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The resource name, e.g. `library/alpine` (no host).
    pub name: String,
    /// The granted actions; always written as an array, even when empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub actions: Vec<String>,
}

/// The claims of a registry token (Docker token spec, `jwt.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawClaims")]
pub struct Claims {
    /// The issuer; must equal the verifier's configured issuer byte for byte.
    pub iss: String,
    /// The subject: the account name, empty for anonymous tokens.
    pub sub: String,
    /// The audience: the service the token is for.
    pub aud: Audience,
    /// Expiry, in Unix seconds.
    pub exp: i64,
    /// Not before, in Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, in Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// A unique token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// What the token grants; empty for a token that only proves identity.
    pub access: Vec<AccessEntry>,
    /// berth's own claim: the personal access token this token was issued
    /// for, so that the issuing registry applies that token's limits too.
    /// Other verifiers ignore it.
    #[serde(rename = "berth_pat", skip_serializing_if = "Option::is_none")]
    pub pat: Option<i64>,
    /// berth's own claim: the revocation generation the issuing registry had
    /// seen when it granted the token, so that it can refuse the token after
    /// a later revocation. Other verifiers ignore it.
    #[serde(rename = "berth_gen", skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// berth's own claim: the trust rules a workload's ID token was
    /// exchanged through (their ids), so that the issuing registry knows what
    /// they grant and refuses the token once one is removed. Other verifiers
    /// ignore it.
    #[serde(rename = "berth_trust", default, skip_serializing_if = "Vec::is_empty")]
    pub trust: Vec<i64>,
}

/// The claims as found, before [`Claims`]' checks.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object of token claims")]
struct RawClaims {
    #[serde(default, deserialize_with = "null_as_default")]
    iss: String,
    #[serde(default, deserialize_with = "null_as_default")]
    sub: String,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    access: Vec<AccessEntry>,
    berth_pat: Option<i64>,
    berth_gen: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    berth_trust: Vec<i64>,
}

/// The reason for refusing claims without `exp`.
const NO_EXP: &str = "a token without `exp` never expires; refusing it";

impl TryFrom<RawClaims> for Claims {
    type Error = &'static str;

    fn try_from(raw: RawClaims) -> Result<Self, Self::Error> {
        Ok(Self {
            iss: raw.iss,
            sub: raw.sub,
            // A missing audience matches no service, so verification fails there.
            aud: raw.aud.unwrap_or(Audience::Many(Vec::new())),
            exp: raw.exp.ok_or(NO_EXP)?,
            nbf: raw.nbf,
            iat: raw.iat,
            jti: raw.jti,
            access: raw.access,
            pat: raw.berth_pat,
            generation: raw.berth_gen,
            trust: raw.berth_trust,
        })
    }
}

impl Claims {
    /// Parses a JWT payload. `exp`, `nbf` and `iat` must be JSON integers;
    /// `exp` is required; an absent `sub` is anonymous and an absent `access`
    /// grants nothing.
    pub fn parse(json: &[u8]) -> Result<Self, ParseError> {
        let raw: RawClaims = serde_json::from_slice(json)
            .map_err(|e| json_err(ParseErrorKind::Claims, json, &e, true))?;
        Claims::try_from(raw).map_err(|reason| {
            let input = String::from_utf8_lossy(json);
            ParseError::new(ParseErrorKind::Claims, &input, json.len(), reason)
        })
    }

    /// The granted scopes. Entries that do not parse (unknown type syntax, a
    /// bad name, an unparsable action, no action) are skipped: they grant nothing.
    pub fn scopes(&self) -> Scopes {
        self.access
            .iter()
            .filter_map(|entry| {
                let resource_type: ResourceType = entry.resource_type.parse().ok()?;
                let actions = entry
                    .actions
                    .iter()
                    .map(|a| a.parse::<Action>())
                    .collect::<Result<_, _>>()
                    .ok()?;
                Scope::new(resource_type, entry.name.as_str(), actions).ok()
            })
            .collect()
    }

    /// The `access` claim a server writes for granted `scopes`.
    pub fn access_from_scopes(scopes: &Scopes) -> Vec<AccessEntry> {
        scopes
            .iter()
            .map(|scope| AccessEntry {
                resource_type: scope.resource_type().to_string(),
                name: scope.name().to_owned(),
                actions: scope.actions().iter().map(ToString::to_string).collect(),
            })
            .collect()
    }
}

/// Deserialises `null` as the type's default, as Go servers write `null` for
/// empty slices and strings.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The claim set example of the Docker token spec, `jwt.md`.
    const SPEC_EXAMPLE: &str = r#"{
        "iss": "auth.docker.com",
        "sub": "jlhawn",
        "aud": "registry.docker.com",
        "exp": 1415387315,
        "nbf": 1415387015,
        "iat": 1415387015,
        "jti": "tYJCO1c6cnyy7kAn0c7rKPgbV1H1bFws",
        "access": [
            {
                "type": "repository",
                "name": "samalba/my-app",
                "actions": [
                    "pull",
                    "push"
                ]
            }
        ]
    }"#;

    #[test]
    fn docker_spec_example() {
        let c = Claims::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(
            (c.iss.as_str(), c.sub.as_str()),
            ("auth.docker.com", "jlhawn")
        );
        assert_eq!(c.aud, Audience::One("registry.docker.com".into()));
        assert!(c.aud.contains("registry.docker.com") && !c.aud.contains("registry"));
        assert_eq!(
            (c.exp, c.nbf, c.iat),
            (1_415_387_315, Some(1_415_387_015), Some(1_415_387_015))
        );
        assert_eq!(c.jti.as_deref(), Some("tYJCO1c6cnyy7kAn0c7rKPgbV1H1bFws"));
        assert_eq!(
            c.scopes().to_string(),
            "repository:samalba/my-app:pull,push"
        );
        assert_eq!(Claims::access_from_scopes(&c.scopes()), c.access);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"iss":"auth.docker.com","sub":"jlhawn","aud":"registry.docker.com","exp":1415387315,"nbf":1415387015,"iat":1415387015,"jti":"tYJCO1c6cnyy7kAn0c7rKPgbV1H1bFws","access":[{"type":"repository","name":"samalba/my-app","actions":["pull","push"]}]}"#
        );
    }

    #[test]
    fn anonymous_token_with_audience_array() {
        let c = Claims::parse(br#"{"iss":"berth","aud":["a","ghcr.io"],"exp":1,"access":null}"#)
            .unwrap();
        assert_eq!(c.sub, "");
        assert!(c.aud.contains("ghcr.io") && !c.aud.contains("b"));
        assert!(c.access.is_empty() && c.scopes().is_empty());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"iss":"berth","sub":"","aud":["a","ghcr.io"],"exp":1,"access":[]}"#
        );
        let c = Claims::parse(br#"{"exp":1}"#).unwrap();
        assert!(!c.aud.contains(""));
    }

    #[test]
    fn unparsable_access_entries_are_skipped() {
        let json = br#"{"iss":"i","aud":"s","exp":1,"access":[
            {"type":"repository","name":"a","actions":["pull","PUSH"]},
            {"type":"Repository","name":"b","actions":["pull"]},
            {"type":"repository","name":"c d","actions":["pull"]},
            {"type":"repository","name":"e","actions":[]},
            {"type":"repository","name":"f"},
            {"type":"registry","name":"catalog","actions":["*"]},
            {"type":"repository","name":"g","actions":["push","pull","delete"]}]}"#;
        let c = Claims::parse(json).unwrap();
        assert_eq!(c.access.len(), 7);
        assert_eq!(
            c.scopes().to_string(),
            "registry:catalog:* repository:g:delete,pull,push"
        );
        let access = Claims::access_from_scopes(&c.scopes());
        assert_eq!(
            access.get(1).map(|a| a.actions.clone()),
            Some(vec!["delete".into(), "pull".into(), "push".into()])
        );
    }

    #[test]
    fn invalid_claims_are_refused() {
        let e = Claims::parse(br#"{"iss":"i","aud":"s"}"#).unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::Claims);
        assert_eq!(
            e.reason(),
            "a token without `exp` never expires; refusing it"
        );
        assert_eq!(e.position(), 21);
        for json in [
            r#"{"exp":1.5}"#,
            r#"{"exp":"1"}"#,
            r#"{"exp":1,"aud":5}"#,
            r#"{"exp":1,"nbf":2.0}"#,
            r#"{"exp":1,"access":{}}"#,
            "[]",
            "",
        ] {
            let e = Claims::parse(json.as_bytes()).unwrap_err();
            assert_eq!((e.kind(), e.input()), (ParseErrorKind::Claims, json), "{e}");
        }
        let e = Claims::parse(b"{\"exp\":1,\n \"iat\": true}").unwrap_err();
        // serde_json stops just after the offending value, on the second line.
        assert_eq!(e.position(), 21);
        assert!(serde_json::from_str::<Claims>(r#"{"iss":"i"}"#).is_err());
    }

    fn claims() -> impl Strategy<Value = Claims> {
        let entry = (
            "[a-z]{1,10}",
            any::<String>(),
            proptest::collection::vec(any::<String>(), 0..3),
        )
            .prop_map(|(resource_type, name, actions)| AccessEntry {
                resource_type,
                name,
                actions,
            });
        let aud = prop_oneof![
            any::<String>().prop_map(Audience::One),
            proptest::collection::vec(any::<String>(), 0..3).prop_map(Audience::Many),
        ];
        let opt = || proptest::option::of(any::<i64>());
        (
            (any::<String>(), any::<String>(), aud, any::<i64>()),
            (opt(), opt(), proptest::option::of(any::<String>()), opt()),
            (
                proptest::collection::vec(entry, 0..3),
                opt(),
                proptest::collection::vec(any::<i64>(), 0..3),
            ),
        )
            .prop_map(
                |((iss, sub, aud, exp), (nbf, iat, jti, pat), (access, generation, trust))| {
                    Claims {
                        iss,
                        sub,
                        aud,
                        exp,
                        nbf,
                        iat,
                        jti,
                        access,
                        pat,
                        generation,
                        trust,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn claims_round_trip(c in claims()) {
            let json = serde_json::to_vec(&c).unwrap();
            prop_assert_eq!(Claims::parse(&json).unwrap(), c);
        }

        #[test]
        fn access_round_trips_through_scopes(
            v in proptest::collection::vec("(repository|registry):[a-z0-9/:._-]{1,12}:(pull|push|delete|\\*)", 0..4)
        ) {
            let scopes = Scopes::parse_all(v.iter().map(String::as_str)).unwrap();
            let claims = Claims {
                iss: "i".into(), sub: String::new(), aud: Audience::One("s".into()), exp: 1,
                nbf: None, iat: None, jti: None, access: Claims::access_from_scopes(&scopes),
                pat: None, generation: None, trust: Vec::new(),
            };
            prop_assert_eq!(claims.scopes(), scopes);
        }

        #[test]
        fn parsing_never_panics(bytes in any::<Vec<u8>>(), s in any::<String>()) {
            let _ = Claims::parse(&bytes);
            let _ = Claims::parse(s.as_bytes());
        }
    }
}
