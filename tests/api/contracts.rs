//! Broken contracts are refused with file, line, column and an actionable message; the CLI
//! lists every error and exits non-zero.

use crate::helpers::repo_path;
use std::path::Path;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_path("contracts/workflow.toml"), dir.path().join("workflow.toml")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// The shared minimal contract (its first line is a comment, so lines below count from 2).
const GOOD: &str = include_str!("../fixtures/minimal_contract.toml");

fn errors(dir: &Path) -> Vec<String> {
    match ebond::contract::load_dir(dir) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn example_contracts_load() {
    let reg = ebond::contract::load_dir(&repo_path("contracts")).expect("examples load");
    assert_eq!(reg.partners().count(), 5);
}

#[test]
fn a_good_minimal_contract_loads() {
    let d = dir_with(&[("p1.toml", GOOD)]);
    assert!(errors(d.path()).is_empty(), "{:?}", errors(d.path()));
}

#[test]
fn syntax_error_has_line_and_column() {
    let d = dir_with(&[("p1.toml", "[partner]\nid = \"p1\nname = 1\n")]);
    let e = errors(d.path());
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("p1.toml:2:"), "{e:?}");
}

#[test]
fn unknown_key_and_unknown_canonical_field_are_located() {
    let text = GOOD.replace("canonical = \"short_description\"", "canonical = \"short_desc\"");
    let d = dir_with(&[("p1.toml", &text)]);
    let e = errors(d.path());
    assert!(e.iter().any(|m| m.contains("p1.toml:15:13: unknown canonical field `short_desc`")), "{e:?}");
    let text = GOOD.replace("type = \"string\"\n\n[access]", "type = \"string\"\ncolour = \"red\"\n\n[access]");
    let d = dir_with(&[("p1.toml", &text)]);
    let e = errors(d.path());
    assert!(e.iter().any(|m| m.contains("p1.toml:17:") && m.contains("colour")), "{e:?}");
}

#[test]
fn bad_value_map_and_transition_with_unknown_state() {
    // `transitions` lands in [access], the last table of GOOD.
    let text = format!(
        "{GOOD}transitions = [\"new -> limbo\"]\n\n[[fields]]\npointer = \"/st\"\ncanonical = \"state\"\ntype = \"enum\"\nvalues = {{ \"A\" = \"nowhere\" }}\n"
    );
    let d = dir_with(&[("p1.toml", &text)]);
    let e = errors(d.path());
    assert!(e.iter().any(|m| m.contains("unknown state `limbo`")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("bad value map") && m.contains("nowhere")), "{e:?}");
    assert!(e.len() >= 2, "all errors at once: {e:?}");
}

#[test]
fn duplicate_partner_id_and_clear_secret() {
    let second = GOOD.replace("name = \"P1\"", "name = \"P1 again\"");
    let with_secret = format!(
        "{}\n[outbound]\ncreate_url = \"https://x.example/t\"\n[outbound.auth]\ntype = \"basic\"\nusername = \"u\"\npassword = \"hunter2\"\n",
        GOOD.replace("id = \"p1\"", "id = \"p3\"")
    );
    let d = dir_with(&[("p1.toml", GOOD), ("p2.toml", &second), ("p3.toml", &with_secret)]);
    let e = errors(d.path());
    assert!(e.iter().any(|m| m.contains("p2.toml:3:6: duplicate partner id `p1`")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("p3.toml") && m.contains("secret given in clear")), "{e:?}");
    assert!(!e.iter().any(|m| m.contains("hunter2")), "the secret is not echoed: {e:?}");
}

#[test]
fn cli_check_lists_errors_and_fails() {
    let text = GOOD.replace("canonical = \"short_description\"", "canonical = \"short_desc\"");
    let d = dir_with(&[("p1.toml", &text)]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(["contracts", "check"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown canonical field `short_desc`") && err.contains("errors found"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(["contracts", "check"])
        .arg(repo_path("contracts"))
        .envs(EXAMPLE_SECRETS.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The secrets the example contracts refer to, as a gateway's environment would hold them.
const EXAMPLE_SECRETS: [(&str, &str); 7] = [
    ("EBOND_ACME_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("EBOND_ENOVIA_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("EBOND_SERVICENOW_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("EBOND_ACME_PASSWORD", "acme-password"),
    ("EBOND_ENOVIA_CSRF_TOKEN", "csrf-token"),
    ("EBOND_FIELDOPS_PASSWORD", "fieldops-password"),
    ("EBOND_SERVICENOW_CLIENT_SECRET", "snow-client-secret"),
];

fn check(path: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(["contracts", "check"])
        .arg(path)
        .env("EBOND_DATA_DIR", path.parent().unwrap_or(path).join("no-data-here"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Secrets must resolve and fit their use, without the value ever being shown.
#[test]
fn check_resolves_secrets_and_their_format() {
    let signed = format!("{GOOD}\n[outbound]\nupdate_url = \"https://p1.example/t/{{partner_ticket_id}}\"\nsigning_secret = \"env:EBOND_TEST_P1_SIGNING\"\n\n[outbound.auth]\ntype = \"basic\"\nusername = \"ebond\"\npassword = \"file:/nonexistent/p1-password\"\n");
    let d = dir_with(&[("p1.toml", &signed)]);
    let (ok, err) = check(d.path(), &[]);
    assert!(!ok);
    assert!(
        err.contains(
            "signing_secret `env:EBOND_TEST_P1_SIGNING`: the environment variable EBOND_TEST_P1_SIGNING is not set"
        ),
        "{err}"
    );
    assert!(
        err.contains("password `file:/nonexistent/p1-password`: the file /nonexistent/p1-password cannot be read"),
        "{err}"
    );
    let (ok, err) = check(d.path(), &[("EBOND_TEST_P1_SIGNING", "not-a-webhook-secret-value")]);
    assert!(!ok);
    assert!(
        err.contains("must start with `whsec_`") && !err.contains("not-a-webhook-secret-value"),
        "never the value: {err}"
    );
    let pw = d.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let fixed = signed.replace("/nonexistent/p1-password", pw.to_str().unwrap());
    std::fs::write(d.path().join("p1.toml"), fixed).unwrap();
    let (ok, err) = check(d.path(), &[("EBOND_TEST_P1_SIGNING", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]);
    assert!(ok, "{err}");
}

/// A transition the partner may perform but can never complete, a partner that may create but
/// cannot start a ticket anywhere, and a file named for another id.
#[test]
fn check_proves_transitions_and_creation_can_complete() {
    let mover = GOOD.replace(
        "[access]",
        "[[fields]]\npointer = \"/status\"\ncanonical = \"state\"\ntype = \"enum\"\nvalues = { \"open\" = \"new\", \"busy\" = \"in_progress\", \"done\" = \"resolved\" }\n\n[access]\ntransitions = [\"new -> in_progress\", \"in_progress -> resolved\"]",
    )
    .replace("write = [\"partner_ticket_id\", \"short_description\"]", "write = [\"partner_ticket_id\", \"short_description\", \"state\"]");
    let no_summary = GOOD
        .replace("id = \"p1\"", "id = \"p2\"")
        .replace("canonical = \"short_description\"", "canonical = \"description\"")
        .replace(
            "write = [\"partner_ticket_id\", \"short_description\"]",
            "write = [\"partner_ticket_id\", \"description\"]",
        )
        .replace("read = [\"short_description\"]", "read = [\"description\"]");
    let d = dir_with(&[("p1.toml", &mover), ("second.toml", &no_summary)]);
    let (ok, err) = check(d.path(), &[]);
    assert!(!ok);
    assert!(
        err.contains("the transition `busy` (in_progress) → `done` (resolved) can never complete: state `resolved` requires resolution_code, resolution_notes"),
        "in the partner's values: {err}"
    );
    assert!(!err.contains("`open` (new) → `busy`"), "new -> in_progress can complete: {err}");
    assert!(err.contains("can start a ticket in no initial state"), "{err}");
    assert!(err.contains("warning: the file is named `second.toml` but the partner id is `p2`"), "{err}");

    // One file, checked with the workflow beside it.
    let (ok, err) = check(&d.path().join("p1.toml"), &[]);
    assert!(!ok);
    assert!(err.contains("p1.toml") && !err.contains("second.toml"), "{err}");
}

#[test]
fn checked_in_schemas_are_current() {
    let stale = ebond::contract::stale_schemas(&repo_path("schema"));
    assert!(stale.is_empty(), "stale contract schemas {stale:?}: run `cargo run -- contracts schema` and commit");
}

/// Every key the example files use is one the schema offers (what an editor completes).
#[test]
fn the_schema_knows_every_key_of_the_examples() {
    fn resolve<'a>(root: &'a serde_json::Value, s: &'a serde_json::Value) -> &'a serde_json::Value {
        match s.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => resolve(root, &root["definitions"][r.trim_start_matches("#/definitions/")]),
            None => s,
        }
    }
    fn walk(
        root: &serde_json::Value,
        schema: &serde_json::Value,
        v: &toml::Value,
        at: &str,
        missing: &mut Vec<String>,
    ) {
        let schema = resolve(root, schema);
        match v {
            toml::Value::Table(t) => {
                for (k, child) in t {
                    let sub = match schema["properties"].get(k) {
                        Some(s) => s,
                        None if schema["additionalProperties"].is_object() => &schema["additionalProperties"],
                        None if schema["additionalProperties"] == true => continue,
                        None => {
                            missing.push(format!("{at}.{k}"));
                            continue;
                        }
                    };
                    walk(root, sub, child, &format!("{at}.{k}"), missing);
                }
            }
            toml::Value::Array(a) => {
                a.iter().for_each(|x| walk(root, &schema["items"], x, &format!("{at}[]"), missing))
            }
            _ => {}
        }
    }
    let schemas: std::collections::HashMap<&str, serde_json::Value> = ebond::contract::schemas().into_iter().collect();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(repo_path("contracts")).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        let name = if path.ends_with("workflow.toml") { "workflow.schema.json" } else { "contract.schema.json" };
        assert!(text.starts_with(&format!("#:schema ../schema/{name}")), "{} names its schema", path.display());
        let root = &schemas[name];
        walk(root, root, &v, &path.file_name().unwrap().to_string_lossy(), &mut missing);
    }
    assert!(missing.is_empty(), "keys the schema does not know: {missing:#?}");
}

/// `ebond partner new` writes a contract to start from that loads and says where it came from.
#[test]
fn partner_new_scaffolds_a_contract() {
    let d = tempfile::tempdir().unwrap();
    let contracts = d.path().join("contracts");
    std::fs::create_dir_all(&contracts).unwrap();
    std::fs::copy(repo_path("contracts/workflow.toml"), contracts.join("workflow.toml")).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
            .args(args)
            .env("EBOND_CONTRACTS_DIR", &contracts)
            .env("EBOND_DATA_DIR", d.path().join("data"))
            .envs(EXAMPLE_SECRETS.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["partner", "new", "globex", "--like", "acme-msp", "--name", "Globex field service"]);
    assert!(ok, "{err}");
    assert!(out.contains("globex.toml"), "{out}");
    let text = std::fs::read_to_string(contracts.join("globex.toml")).unwrap();
    assert!(text.starts_with("#:schema ../schema/contract.schema.json\n"), "{text}");
    assert!(
        text.contains("id = \"globex\"")
            && text.contains("name = \"Globex field service\"")
            && text.contains("contract_version = \"0.1.0\"")
    );
    assert!(text.contains("started from the `acme-msp` example"), "{text}");
    let (ok, out, err) = run(&["contracts", "check"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("globex"), "{out}");
    let (ok, _, err) = run(&["partner", "new", "globex"]);
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, _, err) = run(&["partner", "new", "Bad Id"]);
    assert!(!ok, "{err}");
    let (ok, _, err) = run(&["partner", "new", "p9", "--like", "nothing"]);
    assert!(!ok && err.contains("no example `nothing`"), "{err}");
}
