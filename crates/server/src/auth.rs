//! Authentication: API keys and JWTs, and the scopes they carry.
//!
//! # Design
//!
//! Credentials come as `Authorization: Bearer <token>` (API key or JWT) or `X-API-Key: <key>`.
//!
//! - **API keys** look like `wdn_<id>_<secret>`: `id` is 16 hex digits (public, used to find
//!   the row and to revoke), `secret` is 32 bytes from the OS random number generator in
//!   unpadded base64url. Only the SHA-256 of the whole key is stored (a fast hash is right for
//!   a 256-bit random secret: there is nothing to brute-force), and it is compared with
//!   [`subtle::ConstantTimeEq`]. An unknown id is compared against a dummy hash so both paths
//!   cost the same.
//! - **JWTs** are verified by `jsonwebtoken` with the one algorithm the configuration pins
//!   (RFC 8725 section 3.1: never let the token choose): `alg: none` does not even parse, and an
//!   HS256 token signed with an RSA public key as its secret fails on the algorithm check before
//!   any key is used. `exp` is required; `nbf` is checked; `iss` and `aud` when configured; the
//!   leeway is configured (seconds). RS256/ES256/EdDSA keys are chosen by the header's `kid`.
//!   Scopes come from the `scope` claim (space-separated string as in RFC 8693 section 4.2, or an
//!   array); the principal is `jwt:<sub>` (`sub` is required).
//!
//! Every failure has a [`Reason`] for the audit log and metrics; clients only ever see a generic
//! 401.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, JwtAlgorithm, Secrets};
use crate::store::{unix_now, Store, StoreError};

/// Prefix of every API key.
pub const KEY_PREFIX: &str = "wdn_";

/// Bytes of randomness in an API key's secret.
pub const KEY_SECRET_BYTES: usize = 32;

/// Header carrying an API key as an alternative to `Authorization`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /v1/executions`, `GET /v1/executions/{id}` (own).
    Execute,
    /// `POST /v1/fetch`.
    Fetch,
    /// `POST /v1/admin/lockdown`, any execution record. Implies nothing else.
    Admin,
}

impl Scope {
    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Execute => "execute",
            Scope::Fetch => "fetch",
            Scope::Admin => "admin",
        }
    }
}

/// A set of scopes; parses from `execute,fetch` or `execute fetch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes(pub BTreeSet<Scope>);

impl Scopes {
    /// Whether `scope` is in the set.
    pub fn has(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// Scopes from a JWT `scope` claim; unknown names are ignored (they may be other
    /// services' scopes).
    fn from_claim(claim: &ScopeClaim) -> Scopes {
        let names: Vec<&str> = match claim {
            ScopeClaim::Text(s) => s.split_whitespace().collect(),
            ScopeClaim::List(v) => v.iter().map(String::as_str).collect(),
        };
        Scopes(names.into_iter().filter_map(|n| n.parse().ok()).collect())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "execute" => Ok(Scope::Execute),
            "fetch" => Ok(Scope::Fetch),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope `{other}`; expected execute, fetch or admin"
            )),
        }
    }
}

impl FromStr for Scopes {
    type Err = String;
    /// Comma- or space-separated scope names; at least one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let set = s
            .split([',', ' '])
            .filter(|n| !n.is_empty())
            .map(Scope::from_str)
            .collect::<Result<BTreeSet<_>, _>>()?;
        if set.is_empty() {
            return Err("no scope given; expected a list such as execute,fetch".into());
        }
        Ok(Scopes(set))
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(" "))
    }
}

/// `bytes` bytes from the OS random number generator, hex-encoded (for secrets such as the
/// HS256 key written by `warden secrets generate`).
///
/// # Errors
///
/// The generator's error, as text.
pub fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| e.to_string())?;
    Ok(hex::encode(buf))
}

/// A freshly generated API key.
pub struct ApiKey {
    /// Public id: 16 hex digits.
    pub id: String,
    secret: String,
}

impl ApiKey {
    /// A new key from the OS random number generator.
    ///
    /// # Errors
    ///
    /// The generator's error, as text.
    pub fn generate() -> Result<ApiKey, String> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; KEY_SECRET_BYTES];
        getrandom::fill(&mut id).map_err(|e| e.to_string())?;
        getrandom::fill(&mut secret).map_err(|e| e.to_string())?;
        Ok(ApiKey {
            id: hex::encode(id),
            secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        })
    }

    /// The key as given to its holder: `wdn_<id>_<secret>`.
    pub fn secret_text(&self) -> String {
        format!("{KEY_PREFIX}{}_{}", self.id, self.secret)
    }

    /// Hex SHA-256 of [`ApiKey::secret_text`]: what the store keeps.
    pub fn hash_hex(&self) -> String {
        hex::encode(Sha256::digest(self.secret_text().as_bytes()))
    }
}

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// An API key.
    ApiKey,
    /// A JWT.
    Jwt,
    /// The local operator of `warden mcp` (stdio): no credential, the process owner.
    Local,
}

impl Method {
    /// `api_key`, `jwt` or `local` (the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ApiKey => "api_key",
            Method::Jwt => "jwt",
            Method::Local => "local",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `key:<id>` or `jwt:<sub>`.
    pub id: String,
    /// How it authenticated.
    pub method: Method,
    /// What it may do.
    pub scopes: Scopes,
}

/// Longest [`Failure::detail`], in bytes.
pub const DETAIL_MAX: usize = 256;

/// Why authentication failed: the `reason` label of `warden_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No credentials.
    Missing,
    /// Credentials that are not an API key or a JWT, or that do not parse.
    Malformed,
    /// No key with this id, or a wrong secret.
    UnknownKey,
    /// The key was revoked.
    Revoked,
    /// The key or token has expired.
    Expired,
    /// The token's signature does not verify.
    BadSignature,
    /// A claim is missing or wrong (`nbf`, `iss`, `aud`, `sub`).
    BadClaims,
    /// The token's algorithm is not the configured one, its `kid` is unknown, or JWTs are not
    /// configured.
    Algorithm,
    /// Authenticated, but without the scope the route needs.
    InsufficientScope,
}

impl Reason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknown_key",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::BadSignature => "bad_signature",
            Reason::BadClaims => "bad_claims",
            Reason::Algorithm => "algorithm",
            Reason::InsufficientScope => "insufficient_scope",
        }
    }
}

/// A failed authentication with its real reason (for the audit log only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why.
    pub reason: Reason,
    /// Which credential type was presented, when one was.
    pub method: Option<Method>,
    /// More detail (key id, verifier error), at most [`DETAIL_MAX`] bytes; never the
    /// credential.
    pub detail: String,
}

impl Failure {
    fn new(reason: Reason, method: Option<Method>, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            method,
            // Verifier messages quote parts of the token (an `alg` or `kid` of any length).
            detail: crate::audit::clip(&detail.into(), DETAIL_MAX),
        }
    }
}

/// Why an [`Authenticator`] cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
#[error("auth.jwt_public_keys: key `{kid}` is not a valid {algorithm:?} public key in PEM form")]
pub struct BadPublicKey {
    /// The key id.
    pub kid: String,
    /// The configured algorithm.
    pub algorithm: JwtAlgorithm,
    /// The cause.
    #[source]
    pub source: jsonwebtoken::errors::Error,
}

/// Verifies JWTs with the pinned algorithm.
#[derive(Clone)]
pub struct JwtVerifier {
    algorithm: Algorithm,
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field(
                "kids",
                &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The `scope` claim: a space-separated string or an array of names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    scope: Option<ScopeClaim>,
}

impl JwtVerifier {
    /// A verifier for `config` with the secrets read by [`crate::config::Config::validate`];
    /// `None` when JWTs are not configured.
    ///
    /// # Errors
    ///
    /// [`BadPublicKey`] for a PEM that is not a key of the configured algorithm.
    pub fn new(
        config: &AuthConfig,
        secrets: &Secrets,
    ) -> Result<Option<JwtVerifier>, BadPublicKey> {
        let Some(configured) = config.jwt_algorithm else {
            return Ok(None);
        };
        let algorithm = match configured {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        };
        let mut keys = Vec::new();
        if let Some(secret) = &secrets.jwt_secret {
            keys.push((None, DecodingKey::from_secret(secret)));
        }
        for (kid, pem) in &secrets.jwt_public_keys {
            let key = match configured {
                JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
                JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(pem),
                JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
                JwtAlgorithm::HS256 => Ok(DecodingKey::from_secret(pem)),
            }
            .map_err(|source| BadPublicKey {
                kid: kid.clone(),
                algorithm: configured,
                source,
            })?;
            keys.push((Some(kid.clone()), key));
        }
        let mut validation = Validation::new(algorithm);
        // jsonwebtoken checks `iss` and `aud` only when the token has them: a configured issuer
        // or audience must also be a required claim, or a token that leaves it out (one minted
        // for another service by the same key) is accepted (RFC 7519 sections 4.1.1 and 4.1.3
        // leave this to the application).
        let mut required = vec!["exp"];
        if config.jwt_issuer.is_some() {
            required.push("iss");
        }
        if config.jwt_audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = config.jwt_leeway_s;
        match &config.jwt_issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &config.jwt_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Some(JwtVerifier {
            algorithm,
            keys,
            validation,
        }))
    }

    /// Verifies `token`.
    ///
    /// # Errors
    ///
    /// A [`Failure`] with the reason.
    pub fn verify(&self, token: &str) -> Result<Principal, Failure> {
        let fail = |reason, detail: String| Failure::new(reason, Some(Method::Jwt), detail);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| fail(Reason::Malformed, format!("header: {e}")))?;
        // The configured algorithm, never the token's: RFC 8725 section 2.1 and 3.1.
        if header.alg != self.algorithm {
            return Err(fail(
                Reason::Algorithm,
                format!(
                    "token algorithm {:?} is not the configured {:?}",
                    header.alg, self.algorithm
                ),
            ));
        }
        let key = match (&header.kid, self.keys.as_slice()) {
            (_, [(None, key)]) => key,
            (None, [(_, key)]) => key,
            (Some(kid), keys) => keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid.as_str()))
                .map(|(_, key)| key)
                .ok_or_else(|| fail(Reason::Algorithm, format!("unknown kid `{kid}`")))?,
            (None, _) => {
                return Err(fail(
                    Reason::Algorithm,
                    "token has no kid and several keys are configured".into(),
                ))
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::ExpiredSignature => Reason::Expired,
                ErrorKind::InvalidSignature => Reason::BadSignature,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::MissingAlgorithm
                | ErrorKind::InvalidAlgorithmName => Reason::Algorithm,
                ErrorKind::ImmatureSignature
                | ErrorKind::InvalidIssuer
                | ErrorKind::InvalidAudience
                | ErrorKind::InvalidSubject
                | ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_) => Reason::BadClaims,
                _ => Reason::Malformed,
            };
            fail(reason, e.to_string())
        })?;
        let sub = data
            .claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| fail(Reason::BadClaims, "no `sub` claim".into()))?;
        let scopes = data
            .claims
            .scope
            .as_ref()
            .map(Scopes::from_claim)
            .unwrap_or_default();
        Ok(Principal {
            id: format!("jwt:{sub}"),
            method: Method::Jwt,
            scopes,
        })
    }
}

/// The credential a request presents.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// An API key.
    ApiKey(&'a str),
    /// Something that looks like a JWT (three dot-separated parts).
    Jwt(&'a str),
}

/// Extracts the credential from `headers`.
///
/// # Errors
///
/// [`Reason::Missing`] without credentials; [`Reason::Malformed`] for an unusable header, both
/// headers at once, or a token that is neither a key nor a JWT.
pub fn credential(headers: &HeaderMap) -> Result<Credential<'_>, Failure> {
    let malformed = |detail: &str| Failure::new(Reason::Malformed, None, detail);
    let authorization = headers.get(axum::http::header::AUTHORIZATION);
    let api_key = headers.get(API_KEY_HEADER);
    let token = match (authorization, api_key) {
        (None, None) => return Err(Failure::new(Reason::Missing, None, "no credentials")),
        (Some(_), Some(_)) => return Err(malformed("both Authorization and X-API-Key sent")),
        (None, Some(key)) => {
            let key = key
                .to_str()
                .map_err(|_| malformed("X-API-Key is not ASCII"))?;
            return if key.starts_with(KEY_PREFIX) {
                Ok(Credential::ApiKey(key.trim()))
            } else {
                Err(malformed("X-API-Key is not a wdn_ key"))
            };
        }
        (Some(value), None) => {
            let value = value
                .to_str()
                .map_err(|_| malformed("Authorization is not ASCII"))?;
            let (scheme, token) = value
                .split_once(' ')
                .ok_or_else(|| malformed("Authorization without a scheme"))?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(malformed("Authorization scheme is not Bearer"));
            }
            token.trim()
        }
    };
    if token.starts_with(KEY_PREFIX) {
        Ok(Credential::ApiKey(token))
    } else if token.split('.').count() == 3 {
        Ok(Credential::Jwt(token))
    } else {
        Err(malformed("bearer token is neither a wdn_ key nor a JWT"))
    }
}

/// Authenticates requests against the store's keys and the JWT configuration.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    jwt: Option<JwtVerifier>,
}

/// Hash compared against when no key has the presented id, so that path costs the same.
const DUMMY_HASH: [u8; 32] = [0x5a; 32];

impl Authenticator {
    /// An authenticator over `store` and an optional JWT verifier.
    pub fn new(store: Store, jwt: Option<JwtVerifier>) -> Self {
        Authenticator { store, jwt }
    }

    /// Whether JWTs are accepted.
    pub fn jwt_enabled(&self) -> bool {
        self.jwt.is_some()
    }

    /// Authenticates the request with these headers.
    ///
    /// # Errors
    ///
    /// `Ok(Err(failure))` for a refused credential; `Err` when the store cannot be read.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Result<Principal, Failure>, StoreError> {
        match credential(headers) {
            Err(failure) => Ok(Err(failure)),
            Ok(Credential::Jwt(token)) => Ok(match &self.jwt {
                Some(verifier) => verifier.verify(token),
                None => Err(Failure::new(
                    Reason::Algorithm,
                    Some(Method::Jwt),
                    "JWT authentication is not configured",
                )),
            }),
            Ok(Credential::ApiKey(key)) => self.verify_key(key).await,
        }
    }

    async fn verify_key(&self, key: &str) -> Result<Result<Principal, Failure>, StoreError> {
        let fail =
            |reason, detail: String| Ok(Err(Failure::new(reason, Some(Method::ApiKey), detail)));
        let Some((id, secret)) = key
            .strip_prefix(KEY_PREFIX)
            .and_then(|rest| rest.split_once('_'))
        else {
            return fail(Reason::Malformed, "key is not wdn_<id>_<secret>".into());
        };
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
            return fail(Reason::Malformed, "key is not wdn_<id>_<secret>".into());
        }
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let row = self.store.find_key(id).await?;
        let stored: [u8; 32] = row
            .as_ref()
            .and_then(|r| hex::decode(&r.hash).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .unwrap_or(DUMMY_HASH);
        let matches: bool = presented.ct_eq(&stored).into();
        let row = match row {
            Some(row) if matches => row,
            Some(_) => return fail(Reason::UnknownKey, format!("wrong secret for key {id}")),
            None => return fail(Reason::UnknownKey, format!("no key {id}")),
        };
        if row.revoked_at.is_some() {
            return fail(Reason::Revoked, format!("key {id} is revoked"));
        }
        if row.expires_at.is_some_and(|t| t <= unix_now()) {
            return fail(Reason::Expired, format!("key {id} has expired"));
        }
        Ok(Ok(Principal {
            id: format!("key:{id}"),
            method: Method::ApiKey,
            scopes: row.scopes,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::HeaderValue;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::config::Config;
    use crate::testkeys::{ED_PRIVATE, ED_PUBLIC, RSA_PRIVATE, RSA_PUBLIC};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn now() -> i64 {
        unix_now()
    }

    fn hs_verifier(extra: &str) -> JwtVerifier {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, SECRET).unwrap();
        let config = Config::from_toml(&format!(
            "[auth]\njwt_algorithm = \"HS256\"\njwt_secret_file = \"{}\"\njwt_leeway_s = 5\n{extra}",
            path.display()
        ))
        .unwrap();
        let secrets = config.validate().unwrap();
        JwtVerifier::new(&config.auth, &secrets).unwrap().unwrap()
    }

    fn pk_verifier(algorithm: &str, kid: &str, pem: &str) -> JwtVerifier {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pem).unwrap();
        let config = Config::from_toml(&format!(
            "[auth]\njwt_algorithm = \"{algorithm}\"\njwt_public_keys = [{{ kid = \"{kid}\", file = \"{}\" }}]\n",
            path.display()
        ))
        .unwrap();
        let secrets = config.validate().unwrap();
        JwtVerifier::new(&config.auth, &secrets).unwrap().unwrap()
    }

    fn hs_token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn reason(result: Result<Principal, Failure>) -> Reason {
        result.expect_err("token accepted").reason
    }

    /// Review (session 5): the verifier's message quoted a 100 KB `alg` whole, and it went
    /// into the audit chain before any authentication.
    #[test]
    fn failure_details_are_bounded_whatever_the_token_says() {
        let v = hs_verifier("");
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.sig",
            b64(json!({"alg": "x".repeat(100_000), "kid": "y".repeat(100_000)})),
            b64(json!({"sub": "a", "exp": now() + 60}))
        );
        let failure = v.verify(&token).expect_err("token accepted");
        assert!(
            failure.detail.len() <= DETAIL_MAX + 32,
            "{}",
            failure.detail.len()
        );
    }

    #[test]
    fn a_valid_hs256_token_gives_its_subject_and_scopes() {
        let v = hs_verifier("");
        let p = v
            .verify(&hs_token(
                json!({"sub": "agent-1", "exp": now() + 60, "scope": "execute fetch other"}),
            ))
            .unwrap();
        assert_eq!(p.id, "jwt:agent-1");
        assert_eq!(p.scopes, "execute,fetch".parse().unwrap());
        let p = v
            .verify(&hs_token(
                json!({"sub": "a", "exp": now() + 60, "scope": ["admin"]}),
            ))
            .unwrap();
        assert_eq!(p.scopes, "admin".parse().unwrap());
    }

    #[test]
    fn exp_is_required_and_checked_with_the_leeway() {
        let v = hs_verifier("");
        assert_eq!(
            reason(v.verify(&hs_token(json!({"sub": "a"})))),
            Reason::BadClaims
        );
        assert_eq!(
            reason(v.verify(&hs_token(json!({"sub": "a", "exp": now() - 60})))),
            Reason::Expired
        );
        // Inside the 5 s leeway: still accepted.
        v.verify(&hs_token(json!({"sub": "a", "exp": now() - 2})))
            .unwrap();
    }

    #[test]
    fn nbf_iss_aud_and_sub_are_checked() {
        let v = hs_verifier("jwt_issuer = \"https://auth.test/\"\njwt_audience = \"warden\"\n");
        let good =
            json!({"sub": "a", "exp": now() + 60, "iss": "https://auth.test/", "aud": "warden"});
        v.verify(&hs_token(good.clone())).unwrap();
        let with = |k: &str, val: serde_json::Value| {
            let mut c = good.clone();
            c[k] = val;
            hs_token(c)
        };
        assert_eq!(
            reason(v.verify(&with("nbf", json!(now() + 600)))),
            Reason::BadClaims
        );
        assert_eq!(
            reason(v.verify(&with("iss", json!("https://evil.test/")))),
            Reason::BadClaims
        );
        assert_eq!(
            reason(v.verify(&with("aud", json!("other")))),
            Reason::BadClaims
        );
        assert_eq!(reason(v.verify(&with("sub", json!("")))), Reason::BadClaims);
        // Review (session 5): a token that leaves a configured claim out was accepted.
        for claim in ["iss", "aud"] {
            let mut without = good.clone();
            without.as_object_mut().unwrap().remove(claim);
            assert_eq!(
                reason(v.verify(&hs_token(without))),
                Reason::BadClaims,
                "a token without {claim} must be refused"
            );
        }
        // Not configured, not required.
        hs_verifier("")
            .verify(&hs_token(json!({"sub": "a", "exp": now() + 60})))
            .unwrap();
    }

    #[test]
    fn alg_none_and_tampered_tokens_are_rejected() {
        let v = hs_verifier("");
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let claims = b64(json!({"sub": "a", "exp": now() + 60, "scope": "admin"}));
        for alg in ["none", "None", "NONE"] {
            let token = format!("{}.{claims}.", b64(json!({"alg": alg, "typ": "JWT"})));
            assert_eq!(reason(v.verify(&token)), Reason::Malformed, "{alg}");
        }
        let token = hs_token(json!({"sub": "a", "exp": now() + 60, "scope": "execute"}));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{claims}.{}", parts[0], parts[2]);
        assert_eq!(reason(v.verify(&forged)), Reason::BadSignature);
        let other_key = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "a", "exp": now() + 60}),
            &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        )
        .unwrap();
        assert_eq!(reason(v.verify(&other_key)), Reason::BadSignature);
    }

    #[test]
    fn rs256_accepts_its_key_and_rejects_hs256_signed_with_the_public_key() {
        let v = pk_verifier("RS256", "k1", RSA_PUBLIC);
        let claims = json!({"sub": "svc", "exp": now() + 60, "scope": "fetch"});
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let good = encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(v.verify(&good).unwrap().id, "jwt:svc");
        // Algorithm confusion: HS256 with the RSA public key as the HMAC secret.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let confused = encode(
            &header,
            &claims,
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        )
        .unwrap();
        assert_eq!(reason(v.verify(&confused)), Reason::Algorithm);
        // Unknown kid.
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k2".into());
        let other = encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(reason(v.verify(&other)), Reason::Algorithm);
    }

    #[test]
    fn eddsa_keys_work_and_a_wrong_key_type_is_a_config_error() {
        let v = pk_verifier("EdDSA", "ed", ED_PUBLIC);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("ed".into());
        let token = encode(
            &header,
            &json!({"sub": "e", "exp": now() + 60}),
            &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(v.verify(&token).unwrap().id, "jwt:e");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "not a key").unwrap();
        let config = Config::from_toml(&format!(
            "[auth]\njwt_algorithm = \"RS256\"\njwt_public_keys = [{{ kid = \"k\", file = \"{}\" }}]\n",
            path.display()
        ))
        .unwrap();
        let secrets = config.validate().unwrap();
        let err = JwtVerifier::new(&config.auth, &secrets).unwrap_err();
        assert!(err.to_string().contains("`k`"), "{err}");
    }

    #[test]
    fn credentials_are_read_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h).unwrap_err().reason, Reason::Missing);
        h.insert("authorization", HeaderValue::from_static("Bearer wdn_00_x"));
        assert_eq!(credential(&h).unwrap(), Credential::ApiKey("wdn_00_x"));
        h.insert("authorization", HeaderValue::from_static("bearer a.b.c"));
        assert_eq!(credential(&h).unwrap(), Credential::Jwt("a.b.c"));
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic dXNlcjpwdw=="),
        );
        assert_eq!(credential(&h).unwrap_err().reason, Reason::Malformed);
        h.insert("authorization", HeaderValue::from_static("Bearer nonsense"));
        assert_eq!(credential(&h).unwrap_err().reason, Reason::Malformed);
        h.insert(API_KEY_HEADER, HeaderValue::from_static("wdn_00_x"));
        assert_eq!(credential(&h).unwrap_err().reason, Reason::Malformed);
        h.remove("authorization");
        assert_eq!(credential(&h).unwrap(), Credential::ApiKey("wdn_00_x"));
    }

    #[tokio::test]
    async fn api_keys_verify_and_fail_for_each_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let auth = Authenticator::new(store.clone(), None);
        let scopes: Scopes = "execute".parse().unwrap();
        let (info, key) = store.create_key("t", &scopes, None).await.unwrap();
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(API_KEY_HEADER, HeaderValue::from_str(v).unwrap());
            h
        };
        let p = auth.authenticate(&headers(&key)).await.unwrap().unwrap();
        assert_eq!(p.id, format!("key:{}", info.id));
        assert!(p.scopes.has(Scope::Execute) && !p.scopes.has(Scope::Admin));

        let reason =
            |r: Result<Result<Principal, Failure>, StoreError>| r.unwrap().unwrap_err().reason;
        let mut wrong = key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            reason(auth.authenticate(&headers(&wrong)).await),
            Reason::UnknownKey
        );
        let unknown = format!("wdn_{}_{}", "0".repeat(16), "x".repeat(43));
        assert_eq!(
            reason(auth.authenticate(&headers(&unknown)).await),
            Reason::UnknownKey
        );
        assert_eq!(
            reason(auth.authenticate(&headers("wdn_short")).await),
            Reason::Malformed
        );
        let (_, expired) = store
            .create_key("old", &scopes, Some(unix_now() - 1))
            .await
            .unwrap();
        assert_eq!(
            reason(auth.authenticate(&headers(&expired)).await),
            Reason::Expired
        );
        store.revoke_key(&info.id).await.unwrap();
        assert_eq!(
            reason(auth.authenticate(&headers(&key)).await),
            Reason::Revoked
        );
        let mut jwt = HeaderMap::new();
        jwt.insert("authorization", HeaderValue::from_static("Bearer a.b.c"));
        assert_eq!(reason(auth.authenticate(&jwt).await), Reason::Algorithm);
    }

    #[test]
    fn generated_keys_have_the_prefix_and_enough_entropy() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert!(a.secret_text().starts_with("wdn_"));
        assert_ne!(a.secret_text(), b.secret_text());
        let secret = a.secret_text().splitn(3, '_').nth(2).unwrap().to_string();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret)
            .unwrap();
        assert_eq!(bytes.len(), KEY_SECRET_BYTES);
    }

    #[test]
    fn scopes_parse_and_print() {
        let s: Scopes = "fetch, execute".parse().unwrap();
        assert_eq!(s.to_string(), "execute fetch");
        assert!("execute,root"
            .parse::<Scopes>()
            .unwrap_err()
            .contains("root"));
        assert!("".parse::<Scopes>().is_err());
    }
}
