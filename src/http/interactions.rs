//! Interaction context over HTTP: `?interactions=1` on the streams (with an
//! `agent` filter), `GET /api/v1/agents/{id}/interactions` and
//! `GET /api/v1/interactions?externalTag=…`.

use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpResponse};

use super::{ApiError, AppState};
use crate::genesys::Genesys;
use crate::interactions::{GetInteractions, Interactions, InteractionsConfig, WatchSpec};
use crate::registry::{AgentIdsIn, Filter, FilterError, GetAgent};

/// What the interaction routes need.
#[derive(Clone)]
pub struct InteractionsState {
    pub hub: Addr<Interactions>,
    pub upstream: Genesys,
    pub cfg: InteractionsConfig,
}

fn bad(param: &str, reason: &str) -> ApiError {
    ApiError::BadParam(FilterError {
        param: param.into(),
        reason: reason.into(),
    })
}

/// The hub and agents to watch when the query asks `interactions=1`.
pub fn wanted(query: &str, st: &AppState, filter: &Filter) -> Result<Option<WatchSpec>, ApiError> {
    let on = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "interactions")
        .map(|(_, v)| v.into_owned());
    match on.as_deref() {
        None | Some("0") | Some("false") => Ok(None),
        Some("1") | Some("true") => {
            if filter.agents.is_empty() || filter.agents.len() > 50 {
                return Err(bad(
                    "interactions",
                    "interaction context needs an agent filter of 1 to 50 agents (?agent=ID)",
                ));
            }
            let Some(i) = st.interactions() else {
                return Err(bad(
                    "interactions",
                    "this gateway serves no interaction context",
                ));
            };
            Ok(Some((i.hub.clone(), filter.agents.clone())))
        }
        Some(_) => Err(bad("interactions", "must be 1, true, 0 or false")),
    }
}

fn state(st: &AppState) -> Result<&InteractionsState, ApiError> {
    st.interactions()
        .ok_or_else(|| ApiError::NotReady("this gateway serves no interaction context".into()))
}

/// `GET /api/v1/agents/{id}/interactions`: live when someone watches the
/// agent, else read through REST.
pub(crate) async fn agent_interactions(
    req: actix_web::HttpRequest,
    path: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::extract::only_params(req.query_string(), &[])?;
    let id = path.into_inner();
    let s = state(&st)?;
    let rec = st
        .registry
        .send(GetAgent { id: id.clone() })
        .await?
        .ok_or_else(|| ApiError::AgentNotFound(id.clone()))?;
    // Another division's agent looks absent to a division-scoped client.
    if let Some(d) = &crate::http::guard::principal(&req)?.divisions {
        if !d.contains(&rec.agent.division.id) {
            return Err(ApiError::AgentNotFound(id));
        }
    }
    let (list, source) = match s
        .hub
        .send(GetInteractions {
            user_id: id.clone(),
        })
        .await?
    {
        Some(l) => (l, "live"),
        None => (
            s.upstream
                .active_interactions(id.clone())
                .await?
                .map_err(|e| match e {
                    crate::genesys::rest::RestError::Busy(_) => {
                        ApiError::UpstreamBusy(format!("Genesys: {e}"))
                    }
                    e => ApiError::NotReady(format!("Genesys: {e}")),
                })?,
            "rest",
        ),
    };
    Ok(
        HttpResponse::Ok().json(crate::protocol::context::agent_interactions_body(
            &id,
            source,
            &list,
            s.cfg.redact_customer,
        )),
    )
}

/// `GET /api/v1/interactions?externalTag=…`: one upstream query per tag and
/// cache interval, however many callers ask.
pub(crate) async fn by_external_tag(
    principal: crate::auth::Principal,
    q: web::Query<std::collections::HashMap<String, String>>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(k) = q.keys().find(|k| *k != "externalTag") {
        return Err(bad(k, "unknown parameter; this route takes externalTag"));
    }
    let s = state(&st)?;
    let tag = q
        .get("externalTag")
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| {
            bad(
                "externalTag",
                "give ?externalTag=<tag> (1 to 200 characters)",
            )
        })?;
    let v = s
        .upstream
        .find_by_external_tag(
            tag.clone(),
            Duration::from_secs(s.cfg.tag_cache_secs),
            s.cfg.tag_search_hours,
        )
        .await?
        .map_err(|e| {
            // The tag cache shares answers as text; the client lane's
            // refusal is the one a caller should simply retry.
            let busy = crate::genesys::rest::RestError::Busy(0).to_string();
            let prefix = busy.split(" (").next().unwrap_or(&busy);
            if e.starts_with(prefix) {
                ApiError::UpstreamBusy(format!("Genesys: {e}"))
            } else {
                ApiError::NotReady(format!("Genesys: {e}"))
            }
        })?;
    let mut v = v;
    if let Some(divisions) = &principal.divisions {
        let visible = st
            .registry
            .send(AgentIdsIn {
                divisions: divisions.as_ref().clone(),
            })
            .await?;
        crate::genesys::conversations::scope_conversations(&mut v, &visible);
    }
    if s.cfg.redact_customer {
        crate::genesys::conversations::redact_conversations(&mut v);
    }
    Ok(HttpResponse::Ok().json(v))
}
