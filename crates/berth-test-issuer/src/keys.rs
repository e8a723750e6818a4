//! Signing keys: an RSA (RS256) or P-256 (ES256) key pair, its `kid`, its
//! public JWK as the issuer publishes it, and the forgeries an attacker who
//! knows only public material can make.
//!
//! The `kid` is the key's RFC 7638 thumbprint (SHA-256, base64url), as many
//! issuers use: distinct for distinct keys and stable for one key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// One key pair the issuer may sign with.
pub(crate) struct SigningKey {
    /// The `kid` of the JWK and of the tokens' headers.
    pub(crate) kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    /// The public JWK, as `/jwks` lists it.
    pub(crate) jwk: Value,
    /// The public key as a `-----BEGIN PUBLIC KEY-----` (SPKI) PEM: what a
    /// verifier that stores PEM keys holds, and so the HMAC secret of the
    /// key-confusion forgery.
    pub(crate) public_pem: String,
}

impl SigningKey {
    /// A new RSA 2048 key for RS256.
    pub(crate) fn generate_rs256() -> Self {
        Self::generate(&rcgen::PKCS_RSA_SHA256, Algorithm::RS256)
    }

    /// A new P-256 key for ES256.
    pub(crate) fn generate_es256() -> Self {
        Self::generate(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256)
    }

    fn generate(rcgen_alg: &'static rcgen::SignatureAlgorithm, algorithm: Algorithm) -> Self {
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).expect("the key generates");
        let private_pem = pair.serialize_pem();
        let encoding = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        }
        .expect("rcgen's PKCS#8 PEM loads");
        let mut public =
            Jwk::from_encoding_key(&encoding, algorithm).expect("the public JWK derives");
        let kid = public.thumbprint(ThumbprintHash::SHA256);
        public.common.key_id = Some(kid.clone());
        let alg = match algorithm {
            Algorithm::ES256 => "ES256",
            _ => "RS256",
        };
        // Written out rather than serialized from `Jwk`, so that the published
        // members are exactly the ones real issuers send.
        let jwk = match &public.algorithm {
            AlgorithmParameters::RSA(rsa) => json!({
                "kty": "RSA", "alg": alg, "use": "sig", "kid": kid, "n": rsa.n, "e": rsa.e,
            }),
            AlgorithmParameters::EllipticCurve(ec) => json!({
                "kty": "EC", "alg": alg, "use": "sig", "kid": kid, "crv": "P-256",
                "x": ec.x, "y": ec.y,
            }),
            _ => unreachable!("only RSA and EC keys are generated"),
        };
        Self {
            kid,
            algorithm,
            encoding,
            jwk,
            public_pem: pair.public_key_pem(),
        }
    }

    /// `claims` signed with this key, the header naming its `kid`, `typ` JWT.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("a JSON value signs")
    }

    /// `claims` MACed with HS256 keyed with this key's public PEM, the header
    /// naming this key's `kid`: a verifier that takes the algorithm from the
    /// token and the key material as bytes would accept it.
    pub(crate) fn forge_hs256(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let secret = EncodingKey::from_secret(self.public_pem.as_bytes());
        jsonwebtoken::encode(&header, claims, &secret).expect("a JSON value signs")
    }

    /// `claims` under a header with `alg: none` naming this key's `kid`, and
    /// an empty signature.
    pub(crate) fn forge_alg_none(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid});
        format!("{}.{}.", b64_json(&header), b64_json(claims))
    }
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("a JSON value serializes"))
}
