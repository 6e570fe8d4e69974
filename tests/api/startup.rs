//! Settings that cannot work stop the start with a message naming them, instead of being
//! logged and ignored or replaced by a default.

use crate::helpers::repo_path;
use ebond::config::Settings;

fn settings(tmp: &tempfile::TempDir, tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s =
        Settings { data_dir: tmp.path().to_path_buf(), contracts_dir: repo_path("contracts"), ..Default::default() };
    s.database_url = format!("sqlite://{}", tmp.path().join("ebond.db").display()).into();
    tweak(&mut s);
    s
}

fn start_error(tweak: impl FnOnce(&mut Settings)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    match ebond::app::state(settings(&tmp, tweak)) {
        Ok(_) => panic!("the gateway started"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_bad_trusted_proxy_stops_the_start() {
    let err = start_error(|s| s.security.trusted_proxies = vec!["10.0.0.0/8".into(), "intranet".into()]);
    assert!(err.contains("trusted_proxies") && err.contains("`intranet`"), "{err}");
}

#[test]
fn a_database_url_of_another_kind_stops_the_start() {
    let err = start_error(|s| s.database_url = "mysql://ebond@db/ebond".into());
    assert!(err.contains("mysql://") && err.contains("not supported"), "{err}");
    assert!(!std::path::Path::new("mysql:").exists(), "no SQLite file named after the URL");
}

#[test]
fn a_good_configuration_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let state = ebond::app::state(settings(&tmp, |s| {
        s.security.trusted_proxies = vec!["10.0.0.0/8".into(), "192.0.2.1".into()];
    }));
    assert_eq!(state.expect("starts").trusted_proxies.len(), 2);
}
