//! Fixtures for the federation tests.

#![allow(clippy::unwrap_used)]

use super::metadata::ProviderMetadata;
use super::provider::{ProviderConfig, ProviderSettings};
use super::request::PendingLogin;
use crate::testing::SeqRandom;

/// A plain OpenID Connect provider `corp` at `https://idp.example`.
pub(crate) fn oidc_settings() -> ProviderSettings {
    ProviderSettings {
        name: "corp".into(),
        display_name: Some("Corp SSO".into()),
        issuer: Some("https://idp.example".into()),
        client_id: "portcullis".into(),
        client_secret: Some("s3cret".into()),
        ..ProviderSettings::default()
    }
}

/// [`oidc_settings`] as a config.
pub(crate) fn oidc_config() -> ProviderConfig {
    oidc_settings().into_config().unwrap()
}

/// The discovery document of [`oidc_config`]'s provider.
pub(crate) fn discovery_json() -> serde_json::Value {
    serde_json::json!({
        "issuer": "https://idp.example",
        "authorization_endpoint": "https://idp.example/auth",
        "token_endpoint": "https://idp.example/token",
        "userinfo_endpoint": "https://idp.example/me",
        "jwks_uri": "https://idp.example/jwks",
        "response_types_supported": ["code", "id_token"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA", "PS256", "ES384"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "grant_types_supported": ["authorization_code", "refresh_token"]
    })
}

/// [`discovery_json`] parsed.
pub(crate) fn oidc_metadata() -> ProviderMetadata {
    ProviderMetadata::from_discovery(&oidc_config(), discovery_json().to_string().as_bytes())
        .unwrap()
}

/// A pending login at `corp`.
pub(crate) fn pending() -> PendingLogin {
    PendingLogin::new(oidc_config().name, &SeqRandom::default(), 1_000)
}

/// A 2048-bit RSA test key (PKCS#1 DER, generated for these tests with `openssl genpkey`), and its modulus.
const RSA_PKCS8_B64: &str = "MIIEowIBAAKCAQEAyuzE2zBUpYo3/ZSl5fs9uIPpITddzHuxO/rtbf2GwWv85Jcx2LeG0XPqHF+Ob3z6LG7p/Tzb5OXCvgiSf9SvVcpCeJf6Q2PRTLZe8/yX9dxE8IFU12+dgr1dokVyB8JDP120oyIXVc3l2ezJ07n1kPB3/DnxPNedB6XiQ2Wh9N6ZitVVGp0kP2EXj1FWjWKfCvNQp/8VE0SXR+WOb1aKaF0iJSMCsj8Hs4C+fEEo2yDrZOZ67iesFbAoNtu6WVHx3rhGL1ZGSh8tRVRJMaLr3vKv7OOXKGPI99kILOjFN4chQaUU/FnBoLkFPrYDkshuaU1Uuxg5XFxUwclYb/QeBQIDAQABAoIBABnwu/aAHmX9/gvUx4NXg2uVs0TbgMpdyomOGXFszh/mN9EZ8dWQGnQmgvgnD/x5B7sL364PbFW9uFAWJPIh5FsNbMNhPC0GstABZTB/6wYTJx3ujoOuwT4gCnrusTXEM9gDGM8c0cpWdIpP7nn6JOXnE5OC7a93KZv7bOnsMVCttMEF1p6d4oEbVaunhmiQVp/Qk28IJ8Uz1fZlMzkZihnKqVcMGjggn8gkUgf7cbtNvGRFwcM28LVFMxdhzm8+dg1vqrevzDkDU4BTrEQzI2zQy9snEHHNN5oWE/0eGfschheGgWrnO5DrmpMrdynTe9v8DjYA8k5uZL/XO+pJ/JkCgYEA5i3iozegnxuo+sknHFs6D1GL5+Py4apLBRYPtu/xCsgLzF5BqO5Me9fLXX7N5V6QDjcAAi2j0pjoA8W2LeduEwEUghlnEnex0yCot627uu35JTOoNhy3abMwdWxxEobcg6RwiI7cimZPl7tKND4S/6GrRTDHImPjgVKvftUeNHkCgYEA4bA2oGy1Dvul/7MFx0SRt9FyP9qqM9eajmf6QyQo/zcOQCDfbsQ0TtuqzQIE8C4mTigJUi6hDJxXrln44ygmvFy+N1IzQYRxoTL9D7pMNZCBvMcXkCs2AxVV1HOJiGCTekvSLeL/5uGTugUiifrvXQbvS6bp1dl1QLrMlBgjWu0CgYAL2L66YcmNhtHqnmG57uQNF8hYlf3RKX+U8m66npzMTkF1MkC03hbnpNKdrEISlQxa/u+sLQcqdp4yW4Gl2SxsI/kXPRF1/N0VHbAxS+rGkyrohEEbD91MvmE3Ge6z4mcFC3iTPq8RHHTqPURzbeJyb7Kt6/XDylpSNJw9reBRGQKBgH6RpnEdxgTbGGNocOsqB1bBfYNWDHH6jlEi+vVAiEVpCPLp/KRQIM3A3+8NHNvd5dmbFm8ie2tpGrtK9gve7qpgkMTRsrEhp+Axij6Ryj+YBUprlUljEm10P6hgC1eSYeMKNptJXR6Mj56ZVp9vPWI8i2Mv/p/RzrI4kJbVWq6ZAoGBAMphI5TvbT48gDcPbhqi2156rjDvv0+CjlOP93cAX61XQT2+RjsSqfwNm+NI/dgI6JpQTNJFoXsAkX9LHPxIVd68WITU6nfaT81S77J/i8+Z4WhOnJX3gmyqYqcaw2QitPeVookYkuwI+B/u3hPXv/UlXPMcX66gsCtTnLq+y61v";
const RSA_N: &str = "yuzE2zBUpYo3_ZSl5fs9uIPpITddzHuxO_rtbf2GwWv85Jcx2LeG0XPqHF-Ob3z6LG7p_Tzb5OXCvgiSf9SvVcpCeJf6Q2PRTLZe8_yX9dxE8IFU12-dgr1dokVyB8JDP120oyIXVc3l2ezJ07n1kPB3_DnxPNedB6XiQ2Wh9N6ZitVVGp0kP2EXj1FWjWKfCvNQp_8VE0SXR-WOb1aKaF0iJSMCsj8Hs4C-fEEo2yDrZOZ67iesFbAoNtu6WVHx3rhGL1ZGSh8tRVRJMaLr3vKv7OOXKGPI99kILOjFN4chQaUU_FnBoLkFPrYDkshuaU1Uuxg5XFxUwclYb_QeBQ";

/// A signing key of the fake provider.
pub(crate) enum TestKey {
    /// ES256 or ES384.
    Ec(ring::signature::EcdsaKeyPair, &'static str),
    /// EdDSA (Ed25519).
    Ed(ring::signature::Ed25519KeyPair),
    /// RS* / PS*.
    Rsa(ring::signature::RsaKeyPair),
}

impl TestKey {
    /// A fresh EC key for `alg` (ES256 or ES384).
    pub(crate) fn ec(alg: &'static str) -> Self {
        use ring::signature::{
            EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let signing = if alg == "ES256" {
            &ECDSA_P256_SHA256_FIXED_SIGNING
        } else {
            &ECDSA_P384_SHA384_FIXED_SIGNING
        };
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        Self::Ec(
            EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap(),
            alg,
        )
    }

    /// The Ed25519 key of `seed`.
    pub(crate) fn ed(seed: u8) -> Self {
        Self::Ed(ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap())
    }

    /// The RSA test key.
    pub(crate) fn rsa() -> Self {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(RSA_PKCS8_B64)
            .unwrap();
        Self::Rsa(ring::signature::RsaKeyPair::from_der(&der).unwrap())
    }

    /// The public JWK with `kid`.
    pub(crate) fn jwk(&self, kid: Option<&str>) -> serde_json::Value {
        use portcullis_proto::b64;
        use ring::signature::KeyPair;
        let mut jwk = match self {
            Self::Ec(k, alg) => {
                let point = k.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                let crv = if *alg == "ES256" { "P-256" } else { "P-384" };
                serde_json::json!({"kty": "EC", "crv": crv, "x": b64::encode(&point[1..=size]), "y": b64::encode(&point[size + 1..])})
            }
            Self::Ed(k) => {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(k.public_key().as_ref())})
            }
            Self::Rsa(_) => serde_json::json!({"kty": "RSA", "n": RSA_N, "e": "AQAB"}),
        };
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        jwk
    }

    /// Signs `header` and `claims` (JSON values) into a compact JWS with `alg`.
    pub(crate) fn sign(
        &self,
        alg: &str,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> String {
        use portcullis_proto::b64;
        use ring::signature as s;
        let input = format!(
            "{}.{}",
            b64::encode(header.to_string()),
            b64::encode(claims.to_string())
        );
        let rng = ring::rand::SystemRandom::new();
        let sig = match self {
            Self::Ec(k, _) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Self::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
            Self::Rsa(k) => {
                let padding: &'static dyn s::RsaEncoding = match alg {
                    "RS256" => &s::RSA_PKCS1_SHA256,
                    "RS384" => &s::RSA_PKCS1_SHA384,
                    "RS512" => &s::RSA_PKCS1_SHA512,
                    "PS256" => &s::RSA_PSS_SHA256,
                    "PS384" => &s::RSA_PSS_SHA384,
                    _ => &s::RSA_PSS_SHA512,
                };
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(padding, &rng, input.as_bytes(), &mut out).unwrap();
                out
            }
        };
        format!("{input}.{}", b64::encode(sig))
    }
}

/// A JWK Set document of `keys`.
pub(crate) fn jwks_of(keys: &[serde_json::Value]) -> super::jwk::JwkSet {
    super::jwk::JwkSet::parse(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}
