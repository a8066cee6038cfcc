//! `GET /api/v1/queues` and `GET /api/v1/board`: queues with names and
//! live figures (`crate::queues`), and the `[board]` settings pages read
//! (`crate::board`). Both are viewer routes; the queue list is narrowed to a
//! division-scoped caller's divisions (route table: `Scope::Filtered`).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::queues::{self, GetObservations, ObservationState};
use crate::registry::{Filter, GetQueueMembers};

/// `GET /api/v1/queues`: `{"observedAt", "observations", "queues": [{id,
/// name, division, members, onQueue, idle, interacting, communicating,
/// notResponding, offQueue, waiting, longestWaitMs, media}]}`, member
/// figures computed now, waiting customers from the last observation.
///
/// `?division=` (repeated or comma-joined) narrows the list like
/// `GET /api/v1/agents`: an unknown division is a 400, and for a
/// division-scoped caller a division outside its scope is dropped, a 403
/// when none is left. Any other parameter is a 400.
pub async fn list(
    req: HttpRequest,
    principal: Principal,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut filter = Filter::default();
    for (k, v) in super::extract::only_params(req.query_string(), &["division"])? {
        filter.add(&k, &v)?;
    }
    let filter = filter.normalise();
    super::routes::check_divisions(&req, &st, &filter).await?;
    let asked = !filter.divisions.is_empty();
    let filter = crate::auth::scope_filter(&principal, filter)?;
    let members = st.registry.send(GetQueueMembers).await?;
    let figures = queues::agent_figures(&members.queues, members.agents.iter().map(|a| &**a));
    let observed = match st.queues() {
        Some(hub) => hub.send(GetObservations).await?,
        None => ObservationState::default(),
    };
    let merged = queues::merge(figures, &observed.observations);
    let shown = if asked || principal.divisions.is_some() {
        queues::visible(&merged, Some(&filter.divisions))
    } else {
        merged
    };
    Ok(HttpResponse::Ok().json(queues::body(&shown, &observed)))
}

/// `GET /api/v1/board`: the `[board]` settings (thresholds, desktop
/// presences) as pages read them, and the caller's role and divisions
/// (`caller`), so a page offers a presence change to supervisors only.
pub async fn board(
    req: HttpRequest,
    principal: Principal,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::extract::only_params(req.query_string(), &[])?;
    Ok(HttpResponse::Ok().json(crate::board::board_json(&st.board, &principal)))
}
