//! Reading the org through REST: users with presence and routing status
//! (`GET /api/v2/users?expand=presence,routingStatus`, 500 a page), the
//! bulk presence endpoint and `id`-lists for what the best-effort expand
//! left out, presence definitions (current API, legacy as fallback) and
//! queue membership. Also the wire types of those answers, normalised here
//! into [`crate::model`] types so nothing past the upstream sees Genesys's
//! spellings.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesOrdered, StreamExt};
use serde::Deserialize;

use super::rest::{Lane, Rest, RestError};
use crate::model::{
    Division, PresenceDefinition, PresenceState, Queue, RoutingState, RoutingStatus,
    SystemPresence, UserRecord,
};

#[derive(Deserialize, Default, Clone)]
pub struct GRef {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct GDefRef {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub system_presence: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct GUserPresence {
    pub user_id: Option<String>,
    pub presence_definition: Option<GDefRef>,
    pub message: Option<String>,
    pub modified_date: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct GRouting {
    pub status: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct GUser {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub division: GRef,
    pub presence: Option<GUserPresence>,
    pub routing_status: Option<GRouting>,
}

/// A queue of `GET /api/v2/routing/queues`: id, name and owning division.
#[derive(Deserialize)]
struct GQueue {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    division: Option<GRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T: serde::de::DeserializeOwned> {
    /// One entity that does not parse is skipped, not the page.
    #[serde(default = "Vec::new", deserialize_with = "super::lenient::vec")]
    entities: Vec<T>,
    page_count: Option<usize>,
    /// Listings without `pageCount` (e.g. `QueueMemberEntityListing`) page on this.
    next_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GDefinition {
    id: String,
    #[serde(default)]
    system_presence: String,
    #[serde(default)]
    language_labels: BTreeMap<String, String>,
    #[serde(default)]
    name: Option<String>,
    primary: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    deactivated: bool,
}

/// `QueueMember` (`GET /api/v2/routing/queues/{id}/members`). Whether `id`
/// is the user's id or a membership's own id is open, so the user's id is
/// taken from the documented `user.id` first; `joined: false` members are
/// not active in the queue and are left out.
#[derive(Deserialize)]
struct GMember {
    #[serde(default)]
    id: String,
    user: Option<GMemberUser>,
    joined: Option<bool>,
}

#[derive(Deserialize)]
struct GMemberUser {
    id: Option<String>,
}

impl GMember {
    /// The member's user id: `user.id`, else `id`.
    fn user_id(self) -> Option<String> {
        if self.joined == Some(false) {
            return None;
        }
        self.user
            .and_then(|u| u.id)
            .or(Some(self.id))
            .filter(|id| !id.is_empty())
    }
}

/// Normalises a presence as any REST surface or event spells it.
pub fn presence_state(
    def: &GDefRef,
    message: Option<&str>,
    modified: Option<DateTime<Utc>>,
) -> Option<PresenceState> {
    if def.id.is_empty() {
        return None;
    }
    Some(PresenceState {
        definition_id: def.id.clone(),
        system_presence: SystemPresence::parse(&def.system_presence)
            .unwrap_or(SystemPresence::Unknown),
        message: message.unwrap_or_default().to_string(),
        arrival: modified.is_none(),
        modified: modified.unwrap_or_else(Utc::now),
    })
}

/// Normalises a routing status; `None` when the status is missing or unknown.
pub fn routing_state(status: Option<&str>, since: Option<DateTime<Utc>>) -> Option<RoutingState> {
    Some(RoutingState {
        status: RoutingStatus::parse(status?)?,
        since: since.unwrap_or_else(Utc::now),
    })
}

fn user_record(u: GUser) -> UserRecord {
    let presence = u.presence.as_ref().and_then(|p| {
        presence_state(
            p.presence_definition.as_ref()?,
            p.message.as_deref(),
            p.modified_date,
        )
    });
    let routing = u
        .routing_status
        .as_ref()
        .and_then(|r| routing_state(r.status.as_deref(), r.start_time));
    UserRecord {
        id: u.id,
        name: u.name,
        division: Division {
            id: u.division.id,
            name: u.division.name,
        },
        queue_ids: Vec::new(),
        presence,
        routing,
    }
}

/// Pages read at once; the budget still paces them.
const PAGE_CONCURRENCY: usize = 4;

/// Every active user with presence and routing status: all pages, then the
/// bulk presence endpoint and `id` lists for whatever expand left out.
pub async fn read_users(
    rest: &Rest,
    lane: Lane,
    page_size: usize,
) -> Result<Vec<UserRecord>, RestError> {
    let path = |n: usize| {
        format!("/api/v2/users?pageSize={page_size}&pageNumber={n}&expand=presence,routingStatus&state=active")
    };
    let first: Page<GUser> = rest.get_json(lane, &path(1)).await?;
    let pages = first.page_count.unwrap_or(1).max(1);
    let mut users: Vec<UserRecord> = first.entities.into_iter().map(user_record).collect();
    tracing::info!(page = 1, pages, users = users.len(), "read users page");
    let mut pending: FuturesOrdered<_> = FuturesOrdered::new();
    let mut next = 2;
    loop {
        while pending.len() < PAGE_CONCURRENCY && next <= pages {
            let p = path(next);
            let rest = rest.clone();
            pending.push_back(async move { rest.get_json::<Page<GUser>>(lane, &p).await });
            next += 1;
        }
        let Some(page) = pending.next().await else {
            break;
        };
        users.extend(page?.entities.into_iter().map(user_record));
        tracing::debug!(users = users.len(), pages, "read users page");
    }
    fill_missing(rest, lane, &mut users).await?;
    tracing::info!(users = users.len(), pages, "directory read");
    Ok(users)
}

/// Expansions are best effort (§3.1): fetch presence through the bulk
/// endpoint (50 ids a call) and routing status through `id` lists (100 a call).
async fn fill_missing(rest: &Rest, lane: Lane, users: &mut [UserRecord]) -> Result<(), RestError> {
    let index: HashMap<String, usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id.clone(), i))
        .collect();
    let no_presence: Vec<String> = users
        .iter()
        .filter(|u| u.presence.is_none())
        .map(|u| u.id.clone())
        .collect();
    for chunk in no_presence.chunks(50) {
        let items: Vec<super::lenient::Lenient<GUserPresence>> = rest
            .get_json(
                lane,
                &format!(
                    "/api/v2/users/presences/purecloud/bulk?id={}",
                    chunk.join(",")
                ),
            )
            .await?;
        for p in super::lenient::Lenient::keep(items) {
            let Some(i) = p.user_id.as_ref().and_then(|id| index.get(id)) else {
                continue;
            };
            if let Some(def) = &p.presence_definition {
                users[*i].presence = presence_state(def, p.message.as_deref(), p.modified_date);
            }
        }
    }
    let no_routing: Vec<String> = users
        .iter()
        .filter(|u| u.routing.is_none())
        .map(|u| u.id.clone())
        .collect();
    for chunk in no_routing.chunks(100) {
        let page: Page<GUser> = rest
            .get_json(
                lane,
                &format!(
                    "/api/v2/users?id={}&expand=routingStatus&pageSize=100",
                    chunk.join(",")
                ),
            )
            .await?;
        for u in page.entities {
            let Some(i) = index.get(&u.id) else { continue };
            if let Some(r) = &u.routing_status {
                users[*i].routing = routing_state(r.status.as_deref(), r.start_time);
            }
        }
    }
    // The id-list read is itself best effort; the dedicated endpoint is not.
    let still: Vec<usize> = users
        .iter()
        .enumerate()
        .filter(|(_, u)| u.routing.is_none())
        .map(|(i, _)| i)
        .collect();
    for i in still {
        let r: GRouting = rest
            .get_json(
                lane,
                &format!("/api/v2/users/{}/routingstatus", users[i].id),
            )
            .await?;
        users[i].routing = routing_state(r.status.as_deref(), r.start_time);
    }
    if !no_presence.is_empty() || !no_routing.is_empty() {
        tracing::info!(
            presence = no_presence.len(),
            routing = no_routing.len(),
            "filled in state the expand left out"
        );
    }
    Ok(())
}

/// Presence and routing status of `ids` (at most 100) for the anti-entropy
/// sweep: presence through the bulk endpoint (50 ids a call,
/// `GET /api/v2/users/presences/purecloud/bulk?id=`), routing status through
/// an `id` list (100 a call, `GET /api/v2/users?id=…&expand=routingStatus`;
/// the expand is best effort, so a user without it gets `None`). Three calls
/// for 100 agents.
pub async fn read_states(
    rest: &Rest,
    lane: Lane,
    ids: &[String],
) -> Result<Vec<(String, Option<PresenceState>, Option<RoutingState>)>, RestError> {
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut out: Vec<(String, Option<PresenceState>, Option<RoutingState>)> =
        ids.iter().map(|id| (id.clone(), None, None)).collect();
    for chunk in ids.chunks(50) {
        let items: Vec<super::lenient::Lenient<GUserPresence>> = rest
            .get_json(
                lane,
                &format!(
                    "/api/v2/users/presences/purecloud/bulk?id={}",
                    chunk.join(",")
                ),
            )
            .await?;
        for p in super::lenient::Lenient::keep(items) {
            let Some(i) = p.user_id.as_deref().and_then(|id| index.get(id)) else {
                continue;
            };
            if let Some(def) = &p.presence_definition {
                out[*i].1 = presence_state(def, p.message.as_deref(), p.modified_date);
            }
        }
    }
    for chunk in ids.chunks(100) {
        let page: Page<GUser> = rest
            .get_json(
                lane,
                &format!(
                    "/api/v2/users?id={}&expand=routingStatus&pageSize=100",
                    chunk.join(",")
                ),
            )
            .await?;
        for u in page.entities {
            let Some(i) = index.get(u.id.as_str()) else {
                continue;
            };
            if let Some(r) = &u.routing_status {
                out[*i].2 = routing_state(r.status.as_deref(), r.start_time);
            }
        }
    }
    Ok(out)
}

/// The org's presence definitions, deactivated ones included (agents may
/// still sit on one): the current API first, the legacy one as fallback.
///
/// Whether `deactivated=true` means "deactivated ones too" or "only
/// deactivated ones" is open, so the active ones are read without it and
/// the deactivated ones with it, merged by id: no reading loses either.
pub async fn read_definitions(
    rest: &Rest,
    lane: Lane,
) -> Result<Vec<PresenceDefinition>, RestError> {
    let active: Result<Page<GDefinition>, RestError> = rest
        .get_json(lane, "/api/v2/presence/definitions?localeCode=ALL")
        .await;
    let current = match active {
        Ok(p) => {
            let more: Page<GDefinition> = rest
                .get_json(
                    lane,
                    "/api/v2/presence/definitions?deactivated=true&localeCode=ALL",
                )
                .await?;
            let mut all = p.entities;
            for d in more.entities {
                if !all.iter().any(|a| a.id.eq_ignore_ascii_case(&d.id)) {
                    all.push(d);
                }
            }
            Ok(all)
        }
        Err(e) => Err(e),
    };
    let defs = match current {
        Ok(all) => all,
        Err(
            e @ RestError::Status {
                status: 403 | 404, ..
            },
        ) => {
            tracing::warn!(error = %e, "current presence definitions API refused; using the legacy one");
            let mut all = Vec::new();
            let mut page = 1;
            loop {
                let p: Page<GDefinition> = rest
                    .get_json(lane, &format!("/api/v2/presencedefinitions?pageSize=100&pageNumber={page}&deleted=all"))
                    .await?;
                let count = p.page_count.unwrap_or(1);
                all.extend(p.entities);
                if page >= count {
                    break;
                }
                page += 1;
            }
            all
        }
        Err(e) => return Err(e),
    };
    Ok(defs
        .into_iter()
        .map(|d| {
            let label = d
                .language_labels
                .get("en_US")
                .cloned()
                .or(d.name.clone())
                .unwrap_or_default();
            let sp = SystemPresence::parse(&d.system_presence).unwrap_or(SystemPresence::Unknown);
            PresenceDefinition {
                primary: d.primary.unwrap_or(d.kind.as_deref() == Some("System")),
                id: d.id,
                system_presence: sp,
                label,
                language_labels: d.language_labels,
                deactivated: d.deactivated,
            }
        })
        .collect())
}

/// Queues and, per user, the ids of the queues they are a member of.
pub async fn read_queues(
    rest: &Rest,
    lane: Lane,
) -> Result<(Vec<Queue>, HashMap<String, Vec<String>>), RestError> {
    let mut queues = Vec::new();
    let mut page = 1;
    loop {
        let p: Page<GQueue> = rest
            .get_json(
                lane,
                &format!("/api/v2/routing/queues?pageSize=500&pageNumber={page}"),
            )
            .await?;
        let count = p.page_count.unwrap_or(1);
        queues.extend(p.entities.into_iter().map(|q| Queue {
            id: q.id,
            name: q.name,
            division: q.division.filter(|d| !d.id.is_empty()).map(|d| Division {
                id: d.id,
                name: d.name,
            }),
        }));
        if page >= count {
            break;
        }
        page += 1;
    }
    let mut membership: HashMap<String, Vec<String>> = HashMap::new();
    for q in &queues {
        let mut page = 1;
        loop {
            let p: Page<GMember> = rest
                .get_json(
                    lane,
                    &format!(
                        "/api/v2/routing/queues/{}/members?pageSize=100&pageNumber={page}",
                        q.id
                    ),
                )
                .await?;
            // QueueMemberEntityListing has no pageCount: follow nextUri.
            let more = match p.page_count {
                Some(count) => page < count,
                None => p.next_uri.is_some() && !p.entities.is_empty(),
            };
            for user_id in p.entities.into_iter().filter_map(GMember::user_id) {
                membership.entry(user_id).or_default().push(q.id.clone());
            }
            if !more {
                break;
            }
            page += 1;
        }
    }
    for qs in membership.values_mut() {
        qs.sort();
    }
    tracing::info!(
        queues = queues.len(),
        members = membership.len(),
        "queue membership read"
    );
    Ok((queues, membership))
}
