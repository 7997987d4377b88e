//! Real attestations from PyPI (tests/fixtures/pep740, see its README), and synthetic failures
//! made from them.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::{ClaimField, Expected, PredicateType, Refusal, Stage, TrustRoot, Verifier, check_set};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pep740").join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn attestation(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    palisade_dist::sha256_hex(bytes)
}

const SDIST: &str = "pypi_attestations-0.0.19.tar.gz";
const REPO_FIXTURE: &str = "trailofbits/pypi-attestations";

fn github(repository: &str, workflow: &str) -> Expected {
    Expected::Github {
        certificate_issuer: "https://token.actions.githubusercontent.com".into(),
        repository: repository.into(),
        workflow: workflow.into(),
        environment: None,
        owner_id: None,
        repository_id: None,
    }
}

fn trailofbits() -> Expected {
    github("trailofbits/pypi-attestations", "release.yml")
}

fn verifier() -> Verifier {
    Verifier::new(TrustRoot::public_good()).unwrap()
}

fn refuse(value: &Value, filename: &str, sha: &str, expected: &[Expected]) -> Refusal {
    match verifier().verify(value, filename, sha, expected) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(r) => r,
    }
}

fn with_statement(mut value: Value, edit: impl FnOnce(&mut Value)) -> Value {
    let raw = STANDARD.decode(value["envelope"]["statement"].as_str().unwrap()).unwrap();
    let mut statement: Value = serde_json::from_slice(&raw).unwrap();
    edit(&mut statement);
    value["envelope"]["statement"] = Value::String(STANDARD.encode(serde_json::to_vec(&statement).unwrap()));
    value
}

#[test]
fn real_github_attestations_verify_for_their_file_and_publisher() {
    let sha = sha256(&fixture(SDIST));
    for (file, predicate) in [
        ("pypi_attestations-0.0.19.tar.gz.publish.attestation", PredicateType::Publish),
        ("pypi_attestations-0.0.19.tar.gz.slsa.attestation", PredicateType::SlsaProvenance),
    ] {
        let v = verifier().verify(&attestation(file), SDIST, &sha, &[trailofbits()]).unwrap();
        assert_eq!(v.predicate_type, predicate, "{file}");
        assert_eq!(v.matched, 0);
        assert_eq!(v.signer.get(ClaimField::SourceRepositoryUri), Some("https://github.com/trailofbits/pypi-attestations"));
        assert!(v.integrated_time > 1_700_000_000, "{}", v.integrated_time);
    }
}

#[test]
fn the_gitlab_attestation_verifies_for_its_gitlab_publisher_only() {
    let file = "gitlab_oidc_project-0.0.3.tar.gz";
    let sha = sha256(&fixture(file));
    let gitlab = |project: &str, path: &str| Expected::Gitlab {
        certificate_issuer: "https://gitlab.com".into(),
        project: project.into(),
        ci_config_path: path.into(),
        environment: None,
    };
    let att = attestation("gitlab_oidc_project-0.0.3.tar.gz.publish.attestation");
    let v = verifier().verify(&att, file, &sha, &[gitlab("facutuesca/gitlab-oidc-project", ".gitlab-ci.yml")]).unwrap();
    assert_eq!(v.predicate_type, PredicateType::Publish);
    let r = refuse(&att, file, &sha, &[gitlab("facutuesca/other", ".gitlab-ci.yml")]);
    assert_eq!(r.stage, Stage::Identity, "{r}");
    let r = refuse(&att, file, &sha, &[gitlab("facutuesca/gitlab-oidc-project", "release.yml")]);
    assert_eq!(r.stage, Stage::Identity, "{r}");
    // A GitHub publisher of the same name is another issuer.
    let r = refuse(&att, file, &sha, &[github("facutuesca/gitlab-oidc-project", "release.yml")]);
    assert!(r.message.contains("https://gitlab.com"), "{r}");
}

#[test]
fn a_custom_issuer_matches_through_its_claim_mapping() {
    let file = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl";
    let sha = sha256(&fixture(file));
    let att = attestation(&format!("{file}.publish.attestation"));
    // Learn what the certificate says through a deliberately wrong mapping, then require it.
    let r = refuse(
        &att,
        file,
        &sha,
        &[Expected::Custom {
            certificate_issuer: "https://oidc.circleci.com".into(),
            claims: vec![(ClaimField::SubjectAltName, "nobody".into())],
        }],
    );
    assert_eq!(r.stage, Stage::Identity, "{r}");
    let v = verifier().verify(&att, file, &sha, &[]).unwrap_err();
    assert_eq!(v.stage, Stage::Identity);
    let signer_san = {
        // The verifier reports the signer in the message; the SAN is the identity CircleCI issues.
        let start = r.message.find("subject_alt_name \"").expect("the SAN is named") + "subject_alt_name \"".len();
        r.message[start..].split('"').next().unwrap().to_owned()
    };
    let ok =
        Expected::Custom { certificate_issuer: "https://oidc.circleci.com".into(), claims: vec![(ClaimField::SubjectAltName, signer_san)] };
    verifier().verify(&att, file, &sha, &[ok]).unwrap();
}

#[test]
fn another_repository_or_workflow_is_refused_on_identity() {
    let sha = sha256(&fixture(SDIST));
    let att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    for wrong in [github("trailofbits/other", "release.yml"), github("trailofbits/pypi-attestations", "publish.yml")] {
        let r = refuse(&att, SDIST, &sha, &[wrong]);
        assert_eq!(r.stage, Stage::Identity, "{r}");
    }
    // Among several publishers, the matching one is found.
    let v = verifier().verify(&att, SDIST, &sha, &[github("a/b", "x.yml"), trailofbits()]).unwrap();
    assert_eq!(v.matched, 1);
}

#[test]
fn the_workflow_path_is_exact_and_bound_ids_and_environments_must_match() {
    let sha = sha256(&fixture(SDIST));
    let att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    // Owner and repository names are case-insensitive; the workflow file's name is not.
    verifier().verify(&att, SDIST, &sha, &[github("TrailOfBits/PyPI-Attestations", "release.yml")]).unwrap();
    let r = refuse(&att, SDIST, &sha, &[github(REPO_FIXTURE, "Release.yml")]);
    assert_eq!(r.stage, Stage::Identity, "{r}");
    let v = verifier().verify(&att, SDIST, &sha, &[trailofbits()]).unwrap();
    let owner = v.signer.get(ClaimField::SourceRepositoryOwnerIdentifier).unwrap().to_owned();
    let repo = v.signer.get(ClaimField::SourceRepositoryIdentifier).unwrap().to_owned();
    let bound = |owner_id: &str, repository_id: &str, environment: Option<&str>| Expected::Github {
        certificate_issuer: "https://token.actions.githubusercontent.com".into(),
        repository: REPO_FIXTURE.into(),
        workflow: "release.yml".into(),
        environment: environment.map(str::to_owned),
        owner_id: Some(owner_id.into()),
        repository_id: Some(repository_id.into()),
    };
    verifier().verify(&att, SDIST, &sha, &[bound(&owner, &repo, None)]).unwrap();
    // A re-created repository of the same name has other ids.
    let r = refuse(&att, SDIST, &sha, &[bound(&owner, "1", None)]);
    assert!(r.message.contains("source_repository_identifier"), "{r}");
    let r = refuse(&att, SDIST, &sha, &[bound("1", &repo, None)]);
    assert!(r.message.contains("source_repository_owner_identifier"), "{r}");
    // A publisher bound to an environment needs the certificate to name it.
    match v.signer.get(ClaimField::DeploymentEnvironment).map(str::to_owned) {
        Some(env) => {
            verifier().verify(&att, SDIST, &sha, &[bound(&owner, &repo, Some(&env.to_uppercase()))]).unwrap();
            assert_eq!(refuse(&att, SDIST, &sha, &[bound(&owner, &repo, Some("elsewhere"))]).stage, Stage::Identity);
        }
        None => {
            let r = refuse(&att, SDIST, &sha, &[bound(&owner, &repo, Some("pypi"))]);
            assert!(r.message.contains("no deployment environment"), "{r}");
        }
    }
}

#[test]
fn another_file_is_refused_on_the_subject() {
    let sha = sha256(&fixture(SDIST));
    let att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    let r = refuse(&att, "pypi_attestations-0.0.20.tar.gz", &sha, &[trailofbits()]);
    assert_eq!(r.stage, Stage::Subject, "{r}");
    let r = refuse(&att, SDIST, &"0".repeat(64), &[trailofbits()]);
    assert_eq!(r.stage, Stage::Subject, "{r}");
    assert!(r.message.contains("sha256"), "{r}");
}

#[test]
fn a_changed_statement_or_signature_is_refused() {
    let sha = sha256(&fixture(SDIST));
    let att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    // A statement about another digest, keeping the original signature.
    let other = with_statement(att.clone(), |s| s["subject"][0]["digest"]["sha256"] = Value::String("ab".repeat(32)));
    let r = refuse(&other, SDIST, &"ab".repeat(32), &[trailofbits()]);
    assert!(matches!(r.stage, Stage::Signature | Stage::Transparency), "{r}");
    // One flipped bit in the signature.
    let mut flipped = att.clone();
    let mut sig = STANDARD.decode(att["envelope"]["signature"].as_str().unwrap()).unwrap();
    let last = sig.len() - 3;
    sig[last] ^= 1;
    flipped["envelope"]["signature"] = Value::String(STANDARD.encode(&sig));
    let r = refuse(&flipped, SDIST, &sha, &[trailofbits()]);
    assert_eq!(r.stage, Stage::Signature, "{r}");
}

#[test]
fn a_tampered_inclusion_proof_is_refused_on_the_transparency_entry() {
    let sha = sha256(&fixture(SDIST));
    let mut att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    let hashes = &mut att["verification_material"]["transparency_entries"][0]["inclusionProof"]["hashes"][0];
    let mut h = STANDARD.decode(hashes.as_str().unwrap()).unwrap();
    h[0] ^= 0x80;
    *hashes = Value::String(STANDARD.encode(h));
    let r = refuse(&att, SDIST, &sha, &[trailofbits()]);
    assert_eq!(r.stage, Stage::Transparency, "{r}");
}

#[test]
fn a_bad_signature_is_named_before_a_bad_log_entry() {
    // Sigstore checks the log entry first; the refusal still names the signature, as the stages
    // are ordered.
    let sha = sha256(&fixture(SDIST));
    let mut att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    let hash = &mut att["verification_material"]["transparency_entries"][0]["inclusionProof"]["hashes"][0];
    let mut h = STANDARD.decode(hash.as_str().unwrap()).unwrap();
    h[0] ^= 0x80;
    *hash = Value::String(STANDARD.encode(h));
    let mut sig = STANDARD.decode(att["envelope"]["signature"].as_str().unwrap()).unwrap();
    let last = sig.len() - 3;
    sig[last] ^= 1;
    att["envelope"]["signature"] = Value::String(STANDARD.encode(&sig));
    let r = refuse(&att, SDIST, &sha, &[trailofbits()]);
    assert_eq!(r.stage, Stage::Signature, "{r}");
}

#[test]
fn staging_signatures_fail_on_the_public_good_root_before_identity() {
    let file = "rfc8785-0.1.2-py3-none-any.whl";
    let sha = sha256(&fixture(file));
    for name in [format!("{file}.publish.attestation"), format!("{file}.attestation")] {
        let r = refuse(&attestation(&name), file, &sha, &[trailofbits()]);
        assert_eq!(r.stage, Stage::TrustRoot, "{name}: {r}");
        assert!(r.message.contains("public-good"), "{r}");
    }
    // Against the staging root the same attestation passes every check up to identity.
    let staging = Verifier::new(TrustRoot::staging()).unwrap();
    let r = staging.verify(&attestation(&format!("{file}.publish.attestation")), file, &sha, &[trailofbits()]).unwrap_err();
    assert_eq!(r.stage, Stage::Identity, "{r}");
}

#[test]
fn malformed_objects_are_refused_on_format() {
    let sha = sha256(&fixture(SDIST));
    let good = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut v = good.clone();
    v["version"] = 2.into();
    cases.push(("unsupported attestation version 2", v));
    cases.push(("not a JSON object", Value::String("x".into())));
    let mut v = good.clone();
    v["envelope"]["statement"] = "not base64!".into();
    cases.push(("not valid base64", v));
    let mut v = good.clone();
    v["verification_material"]["transparency_entries"] = Value::Array(vec![]);
    cases.push(("no transparency log entry", v));
    let mut v = good.clone();
    v["extra"] = 1.into();
    cases.push(("unknown field", v));
    let mut v = good.clone();
    v["verification_material"]["transparency_entries"][0]["integratedTime"] = "soon".into();
    cases.push(("is not a number", v));
    let mut v = good.clone();
    let entry = v["verification_material"]["transparency_entries"][0].clone();
    v["verification_material"]["transparency_entries"] = Value::Array(vec![entry; 50]);
    cases.push(("at most 4 are read", v));
    cases.push(("unknown predicate type", with_statement(good.clone(), |s| s["predicateType"] = "https://example.com/p".into())));
    cases.push(("must be empty", with_statement(good.clone(), |s| s["predicate"] = serde_json::json!({"a": 1}))));
    cases.push(("_type", with_statement(good.clone(), |s| s["_type"] = "https://in-toto.io/Statement/v0.1".into())));
    for (want, value) in cases {
        let r = refuse(&value, SDIST, &sha, &[trailofbits()]);
        assert_eq!(r.stage, Stage::Format, "{want}: {r}");
        assert!(r.message.contains(want), "{want}: {r}");
    }
    let two = with_statement(good.clone(), |s| {
        let first = s["subject"][0].clone();
        s["subject"].as_array_mut().unwrap().push(first);
    });
    // A statement edited after signing fails its signature before its subject is looked at.
    let r = refuse(&two, SDIST, &sha, &[trailofbits()]);
    assert_eq!(r.stage, Stage::Signature, "{r}");
}

#[test]
fn rekor_v2_entries_are_refused_saying_why() {
    let sha = sha256(&fixture(SDIST));
    let mut att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    let entry = &mut att["verification_material"]["transparency_entries"][0];
    entry.as_object_mut().unwrap().remove("integratedTime");
    entry["kindVersion"]["version"] = "0.0.2".into();
    let r = refuse(&att, SDIST, &sha, &[trailofbits()]);
    assert_eq!(r.stage, Stage::Transparency, "{r}");
    assert!(r.message.contains("Rekor v2") && r.message.contains("RFC 3161"), "{r}");
}

#[test]
fn two_attestations_of_one_predicate_type_are_refused() {
    let sha = sha256(&fixture(SDIST));
    let att = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation");
    let slsa = attestation("pypi_attestations-0.0.19.tar.gz.slsa.attestation");
    let v = verifier();
    let one = v.verify(&att, SDIST, &sha, &[trailofbits()]).unwrap();
    let other = v.verify(&slsa, SDIST, &sha, &[trailofbits()]).unwrap();
    check_set(&[one.clone(), other]).unwrap();
    let r = check_set(&[one.clone(), one]).unwrap_err();
    assert!(r.message.contains("at most one"), "{r}");
}

#[test]
fn an_operator_root_must_be_a_trusted_root() {
    assert!(TrustRoot::from_json("mine", "{}").is_err());
    assert!(TrustRoot::from_json("mine", &String::from_utf8(fixture("pypi_attestations-0.0.19.tar.gz.provenance")).unwrap()).is_err());
}
