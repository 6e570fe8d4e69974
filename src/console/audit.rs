//! Every console action in the transaction log, under the operator's credential
//! (`operator:<id>`), as the admin API records its writes: accepted, or rejected with why.

use super::{ConsoleError, Viewer};
use crate::api::AppState;
use crate::store::StoreError;
use crate::sync::AuditOutcome;
use actix_web::{HttpRequest, ResponseError};

/// Records `viewer`'s action of `req` with its outcome. A row that cannot be written is
/// logged; the action's answer does not wait on the log.
pub async fn record(
    state: &AppState,
    req: &HttpRequest,
    viewer: Option<&Viewer>,
    outcome: Result<u16, &ConsoleError>,
    ticket: Option<(i64, String)>,
) {
    let info = crate::api::audit::request_facts(req);
    let (result, status, codes) = match outcome {
        Ok(status) => ("accepted", status, String::new()),
        Err(e) => ("rejected", e.status_code().as_u16(), e.code()),
    };
    let row = info.row(
        crate::util::now_ms(),
        AuditOutcome { partner: viewer.map(Viewer::label), result, status, error_codes: codes, ticket },
    );
    if let Err(e) = state.db.write(move |c| c.insert_transaction(&row).map_err(StoreError::from)).await {
        tracing::error!(error = %e, "could not write the console action's transaction row");
    }
}

/// Runs a console action and audits its outcome (what every action handler goes through):
/// `status` is what the action answers when it succeeds (303 for a redirect, 200 for a page).
pub async fn audited<T>(
    state: &AppState,
    req: &HttpRequest,
    viewer: Option<&Viewer>,
    status: u16,
    action: impl std::future::Future<Output = Result<T, ConsoleError>>,
) -> Result<T, ConsoleError> {
    let out = action.await;
    record(state, req, viewer, out.as_ref().map(|_| status), None).await;
    out
}
