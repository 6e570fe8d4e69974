//! ServiceNow's most used Python clients, PySNC and pysnow, unmodified, against the gateway over
//! HTTPS (`tests/clients/table_api_clients.py`): Basic and the OAuth password grant, insert, get
//! by sys_id, encoded queries over several pages, field selection, display values, update,
//! `update_multiple` (the batch API) and delete.
//!
//! The Python with both clients installed is named by `EBOND_TEST_PYTHON` (`.ci/run` makes the
//! virtual environment from the package index); without it the case says so and does nothing.

use crate::helpers::{repo_path, Backend, TestApp};
use crate::per_backend;
use crate::pki::Pki;

async fn clients_work_unmodified(backend: Backend) {
    let Ok(python) = std::env::var("EBOND_TEST_PYTHON") else {
        eprintln!("EBOND_TEST_PYTHON is not set: the PySNC and pysnow run is skipped (.ci/run sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"));
    let p = pki.dir.clone();
    let app = TestApp::spawn_with(backend, |s| {
        s.tls.cert_file = Some(p.join("server.pem"));
        s.tls.key_file = Some(p.join("server.key"));
    })
    .await;
    let (user, password) = crate::table_api::login(&app, "initech", false).await;
    let (client_id, client_secret) = app.credentials(Some("initech")).await;
    let url = app.base.replace("http://", "https://");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(repo_path("tests/clients/table_api_clients.py"))
        .env("EBOND_URL", &url)
        .env("EBOND_USER", &user)
        .env("EBOND_PASSWORD", &password)
        .env("EBOND_CLIENT_ID", &client_id)
        .env("EBOND_CLIENT_SECRET", &client_secret)
        .env("REQUESTS_CA_BUNDLE", pki.dir.join("ca.pem"))
        .env_remove("CURL_CA_BUNDLE");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the clients failed on {backend:?}:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all client checks passed"), "{stdout}\n{stderr}");
    println!("{stdout}");
}

per_backend!(pysnc_and_pysnow_work_unmodified, super::clients_work_unmodified);
