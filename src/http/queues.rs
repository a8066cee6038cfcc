//! `GET /api/v1/queues` and `GET /api/v1/board`: queues with names and
//! live figures (`crate::queues`), and the `[board]` settings pages read
//! (`crate::board`). Both are viewer routes; the queue list is narrowed to a
//! division-scoped caller's divisions (route table: `Scope::Filtered`).

use actix_web::{web, HttpResponse};

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::queues::{self, GetObservations, ObservationState};
use crate::registry::GetQueueMembers;

/// `GET /api/v1/queues`: `{"observedAt", "observations", "queues": [{id,
/// name, division, members, onQueue, idle, interacting, communicating,
/// notResponding, offQueue, waiting, longestWaitMs, media}]}`, member
/// figures computed now, waiting customers from the last observation.
pub async fn list(principal: Principal, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let members = st.registry.send(GetQueueMembers).await?;
    let figures = queues::agent_figures(&members.queues, members.agents.iter().map(|a| &**a));
    let observed = match &st.queues {
        Some(hub) => hub.send(GetObservations).await?,
        None => ObservationState::default(),
    };
    let merged = queues::merge(figures, &observed.observations);
    let shown = queues::visible(
        &merged,
        principal.divisions.as_deref().map(|d| d.as_slice()),
    );
    Ok(HttpResponse::Ok().json(queues::body(&shown, &observed, false)))
}

/// `GET /api/v1/board`: the `[board]` settings (thresholds, desktop
/// presences) as pages read them, and the caller's role and divisions
/// (`caller`), so a page offers a presence change to supervisors only.
pub async fn board(principal: Principal, st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(crate::board::board_json(&st.board, &principal))
}
