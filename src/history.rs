//! Presence history: `GET /api/v1/agents/{id}/history` (paged, JSON or CSV)
//! and `GET /api/v1/agents/{id}/summary?date=YYYY-MM-DD` (time in each
//! state that day), read from the journal ([`crate::store::journal`]) and,
//! for the part of a range before the gateway first saw the agent, from
//! Genesys analytics through the REST budget's lowest lane
//! ([`crate::genesys::analytics`]). Every record says which (`source`:
//! `journal` or `genesys_analytics`). Configured by `[history]`.

use actix::Addr;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::genesys::analytics::Span;
use crate::genesys::Genesys;
use crate::model::iso;
use crate::registry::{GetAgent, Registry};
use crate::store::journal::{HistoryRecord, Journal, Kind, QueryJournal, Source, StateRef};

/// History settings (`[history]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Days of journal kept (older records are pruned at start and hourly;
    /// events still waiting for a webhook delivery are kept). 1–3650; default 90.
    pub retention_days: u32,
    /// Ask Genesys analytics for ranges before the gateway first saw an agent.
    pub analytics: bool,
    /// Longest range one history request may cover, in days (Genesys's own
    /// maximum for details queries is UNCONFIRMED, genesys-api.md §7.1). Default 31.
    pub max_range_days: u32,
    /// Records per page when `limit` is not given. Default 500.
    pub page_size: usize,
    /// Largest `limit` accepted. Default 5000.
    pub max_page_size: usize,
    /// Batches the registry holds while the journal's mailbox is full,
    /// before dropping the oldest (see `registry::tap`). Default 65 536.
    pub backlog_batches: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention_days: 90,
            analytics: true,
            max_range_days: 31,
            page_size: 500,
            max_page_size: 5_000,
            backlog_batches: 65_536,
        }
    }
}

impl HistoryConfig {
    /// Checks every bound, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.retention_days) {
            return Err("history.retention_days must be 1 to 3650".into());
        }
        if !(1..=366).contains(&self.max_range_days) {
            return Err("history.max_range_days must be 1 to 366".into());
        }
        if self.page_size == 0 || self.max_page_size < self.page_size {
            return Err("history.page_size must be ≥ 1 and ≤ history.max_page_size".into());
        }
        if self.backlog_batches == 0 {
            return Err("history.backlog_batches must be at least 1".into());
        }
        Ok(())
    }
}

/// A history or webhook API failure, as the caller sees it.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A parameter has a bad value.
    #[error("{param}: {reason}")]
    BadParam { param: String, reason: String },
    /// No such agent or subscriber.
    #[error("{0}")]
    NotFound(String),
    /// The journal failed (disk).
    #[error("the journal failed: {0}")]
    Store(String),
}

fn bad(param: &str, reason: impl Into<String>) -> HistoryError {
    HistoryError::BadParam {
        param: param.into(),
        reason: reason.into(),
    }
}

/// What the history routes share.
pub struct History {
    pub journal: Addr<Journal>,
    /// The Genesys floor (analytics).
    pub upstream: Genesys,
    pub registry: Addr<Registry>,
    pub cfg: HistoryConfig,
}

/// Merged records of one agent in a range.
struct Merged {
    /// Records with `at` in `[from, to)`, oldest first.
    records: Vec<HistoryRecord>,
    /// Per kind, the record in force at `from` (started before it).
    before: Vec<HistoryRecord>,
    coverage_start: Option<DateTime<Utc>>,
    warnings: Vec<String>,
}

/// Analytics spans → records (each with the span before it as `previous`).
fn from_analytics(agent: &str, kind: Kind, spans: &[Span]) -> Vec<HistoryRecord> {
    let mut prev: Option<StateRef> = None;
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let state = match kind {
            Kind::Presence => s.system_presence.clone(),
            Kind::Routing => s.routing_status.clone(),
        };
        let Some(state) = state else { continue };
        let cur = StateRef {
            state,
            definition_id: s.organization_presence_id.clone(),
            label: None,
            since: s.start_time,
        };
        out.push(HistoryRecord {
            id: None,
            source: Source::GenesysAnalytics,
            event_id: None,
            agent_id: agent.to_string(),
            kind,
            origin: None,
            at: s.start_time,
            previous_duration_ms: prev
                .as_ref()
                .map(|p| (s.start_time - p.since).num_milliseconds().max(0)),
            previous: prev.take(),
            current: cur.clone(),
        });
        prev = Some(cur);
    }
    out
}

impl History {
    async fn merged(
        &self,
        agent: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Merged, HistoryError> {
        let slice = self
            .journal
            .send(QueryJournal {
                agent_id: agent.to_string(),
                from,
                to,
            })
            .await
            .map_err(|e| HistoryError::Store(e.to_string()))?
            .map_err(|e| HistoryError::Store(e.to_string()))?;
        let mut m = Merged {
            records: Vec::new(),
            before: slice.before.clone(),
            coverage_start: slice.coverage_start,
            warnings: Vec::new(),
        };
        let needs = slice.coverage_start.is_none_or(|c| from < c);
        if self.cfg.analytics && needs {
            let until = slice.coverage_start.map_or(to, |c| c.min(to));
            match self
                .upstream
                .user_details(agent.to_string(), from, until)
                .await
            {
                Ok(Ok(d)) => {
                    for (kind, spans) in
                        [(Kind::Presence, &d.presence), (Kind::Routing, &d.routing)]
                    {
                        // Where the journal takes over for this kind: its
                        // first record holds the state from then on.
                        let journal_from =
                            slice.first.iter().find(|r| r.kind == kind).map(|r| r.at);
                        for r in from_analytics(agent, kind, spans) {
                            if journal_from.is_some_and(|f| r.at >= f) {
                                continue;
                            }
                            if r.at < from {
                                // The state in force at `from`, unless the journal knows a later one.
                                let slot = m.before.iter_mut().find(|b| b.kind == kind);
                                match slot {
                                    Some(b) if b.at >= r.at => {}
                                    Some(b) => *b = r,
                                    None => m.before.push(r),
                                }
                            } else if r.at < to {
                                m.records.push(r);
                            }
                        }
                    }
                }
                Ok(Err(e)) => m.warnings.push(format!(
                    "Genesys analytics unavailable for the range before the gateway's journal: {e}"
                )),
                Err(e) => m.warnings.push(format!("upstream unavailable: {e}")),
            }
        }
        m.records.extend(slice.records);
        // Stable: analytics (older) before journal records of the same instant.
        m.records
            .sort_by_key(|r| (r.at, r.source == Source::Journal));
        Ok(m)
    }

    async fn known_agent(&self, agent: &str) -> bool {
        matches!(
            self.registry
                .send(GetAgent {
                    id: agent.to_string()
                })
                .await,
            Ok(Some(_))
        )
    }
}

/// The earliest time a parameter may name: 1970-01-01T00:00:00Z.
fn earliest() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The latest time a parameter may name: 9999-12-31T23:59:59.999Z. Within
/// these bounds every day and range computation is exact (no overflow).
fn latest() -> DateTime<Utc> {
    // unwrap: a valid constant date.
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .unwrap()
        .and_hms_milli_opt(23, 59, 59, 999)
        .unwrap()
        .and_utc()
}

/// Refuses times outside 1970-01-01 … 9999-12-31 (a 400 naming `param`).
pub fn in_range(param: &str, v: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, HistoryError> {
    if t < earliest() || t > latest() {
        return Err(bad(
            param,
            format!("{v:?} is out of range; expected a time between 1970-01-01 and 9999-12-31"),
        ));
    }
    Ok(t)
}

/// Parses an RFC 3339 time or a `YYYY-MM-DD` date (UTC midnight), within
/// 1970-01-01 … 9999-12-31.
pub fn parse_time(param: &str, v: &str) -> Result<DateTime<Utc>, HistoryError> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        // unwrap: midnight exists on every date.
        return in_range(param, v, d.and_hms_opt(0, 0, 0).unwrap().and_utc());
    }
    let t = DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            bad(
                param,
                format!("{v:?} is not an RFC 3339 time (2026-05-20T08:00:00Z) or a date: {e}"),
            )
        })?;
    in_range(param, v, t)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    format: Option<String>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV form: one line per record, a header line first.
pub fn to_csv(records: &[HistoryRecord]) -> String {
    let mut out = String::from(
        "id,source,eventId,agentId,kind,origin,at,previousState,previousDefinitionId,previousSince,state,definitionId,label,previousDurationMs\n",
    );
    for r in records {
        let origin = r
            .origin
            .and_then(|o| serde_json::to_value(o).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let source = match r.source {
            Source::Journal => "journal",
            Source::GenesysAnalytics => "genesys_analytics",
        };
        let fields = [
            r.id.map(|i| i.to_string()).unwrap_or_default(),
            source.to_string(),
            r.event_id.clone().unwrap_or_default(),
            r.agent_id.clone(),
            r.kind.as_str().to_string(),
            origin,
            iso(r.at),
            r.previous
                .as_ref()
                .map(|p| p.state.clone())
                .unwrap_or_default(),
            r.previous
                .as_ref()
                .and_then(|p| p.definition_id.clone())
                .unwrap_or_default(),
            r.previous
                .as_ref()
                .map(|p| iso(p.since))
                .unwrap_or_default(),
            r.current.state.clone(),
            r.current.definition_id.clone().unwrap_or_default(),
            r.current.label.clone().unwrap_or_default(),
            r.previous_duration_ms
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// `GET /api/v1/agents/{id}/history?from=&to=&kind=&limit=&offset=`.
/// `from` defaults to 24 hours before `to`, `to` to now; both RFC 3339 or
/// `YYYY-MM-DD` (UTC midnight). JSON unless `Accept: text/csv` (or
/// `format=csv`). Pages by `offset`; `next` (and a `Link` header) name the
/// next page.
/// Minus HTTP: the handler picks CSV (`Accept: text/csv` or
/// [`HistoryPage::csv`]) or JSON ([`HistoryPage::json`]) and sets `Link`.
pub async fn page(h: &History, agent: String, query: &str) -> Result<HistoryPage, HistoryError> {
    let q: HistoryQuery = serde_urlencoded::from_str(query).map_err(|e| {
        bad(
            "query",
            format!("expected from, to, kind, limit, offset, format: {e}"),
        )
    })?;
    let to = match &q.to {
        Some(t) => parse_time("to", t)?,
        None => Utc::now(),
    };
    let from = match &q.from {
        Some(f) => parse_time("from", f)?,
        None => to - Duration::hours(24),
    };
    if from >= to {
        return Err(bad("from", "must be before to"));
    }
    if to - from > Duration::days(i64::from(h.cfg.max_range_days)) {
        return Err(bad(
            "to",
            format!(
                "the range is longer than {} days (history.max_range_days); page through shorter ranges",
                h.cfg.max_range_days
            ),
        ));
    }
    let kind = match q.kind.as_deref() {
        None => None,
        Some("presence") => Some(Kind::Presence),
        Some("routing") => Some(Kind::Routing),
        Some(k) => return Err(bad("kind", format!("{k:?}: expected presence or routing"))),
    };
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => return Err(bad("format", format!("{f:?}: expected csv or json"))),
    };
    let limit = q.limit.unwrap_or(h.cfg.page_size);
    if limit == 0 || limit > h.cfg.max_page_size {
        return Err(bad(
            "limit",
            format!("must be 1 to {}", h.cfg.max_page_size),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let m = h.merged(&agent, from, to).await?;
    if m.records.is_empty() && m.before.is_empty() && !h.known_agent(&agent).await {
        return Err(HistoryError::NotFound(format!(
            "no agent with id {agent:?} and no history for it"
        )));
    }
    let all: Vec<HistoryRecord> = m
        .records
        .into_iter()
        .filter(|r| kind.is_none_or(|k| r.kind == k))
        .collect();
    let total = all.len();
    let page: Vec<HistoryRecord> = all.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < total).then(|| {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        qs.append_pair("from", &iso(from))
            .append_pair("to", &iso(to))
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &(offset + page.len()).to_string());
        if let Some(k) = kind {
            qs.append_pair("kind", k.as_str());
        }
        format!("/api/v1/agents/{agent}/history?{}", qs.finish())
    });
    Ok(HistoryPage {
        agent,
        from,
        to,
        total,
        offset,
        limit,
        next,
        coverage_start: m.coverage_start,
        warnings: m.warnings,
        csv,
        records: page,
    })
}

/// One page of an agent's history.
#[derive(Debug)]
pub struct HistoryPage {
    pub agent: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Records in the range (all pages).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// The next page's path and query, if there is one.
    pub next: Option<String>,
    /// Where the journal starts, if it does not cover `from`.
    pub coverage_start: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    /// `format=csv` was asked.
    pub csv: bool,
    pub records: Vec<HistoryRecord>,
}

impl HistoryPage {
    /// The JSON answer.
    pub fn json(&self) -> Value {
        let count = |s: Source| self.records.iter().filter(|r| r.source == s).count();
        json!({
            "agentId": self.agent,
            "from": iso(self.from),
            "to": iso(self.to),
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "next": self.next,
            "coverageStart": self.coverage_start.map(iso),
            "sources": {"journal": count(Source::Journal), "genesys_analytics": count(Source::GenesysAnalytics)},
            "warnings": self.warnings,
            "records": self.records,
        })
    }

    /// The CSV answer ([`to_csv`]).
    pub fn csv(&self) -> String {
        to_csv(&self.records)
    }
}

/// Time in each state over `[from, to)` for one kind: the record in force
/// at `from` (if known) and the records after it, as contiguous segments.
/// Returns `(covered_from, totals in ms by state)`; the totals add up to
/// `to - covered_from` exactly.
pub fn time_in_state(
    before: Option<&HistoryRecord>,
    records: &[&HistoryRecord],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<(DateTime<Utc>, std::collections::BTreeMap<String, i64>)> {
    let mut segs: Vec<(DateTime<Utc>, &str)> = Vec::new();
    if let Some(b) = before {
        segs.push((from, &b.current.state));
    }
    for r in records {
        segs.push((r.at.clamp(from, to), &r.current.state));
    }
    let covered_from = segs.first()?.0;
    let mut totals = std::collections::BTreeMap::new();
    for (i, (start, state)) in segs.iter().enumerate() {
        let end = segs.get(i + 1).map_or(to, |n| n.0).max(*start);
        *totals.entry(state.to_string()).or_insert(0) += (end - *start).num_milliseconds();
    }
    Some((covered_from, totals))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    date: Option<String>,
}

/// `GET /api/v1/agents/{id}/summary?date=YYYY-MM-DD`: milliseconds in each
/// presence and routing status on that UTC day (today without `date`), up
/// to now for today. The
/// totals add up to `coveredMs` = `to - coveredFrom`, where `coveredFrom` is
/// midnight when the state at midnight is known, else the first record.
///
/// Minus HTTP: the JSON answer.
pub async fn summary(h: &History, agent: String, query: &str) -> Result<Value, HistoryError> {
    let q: SummaryQuery = serde_urlencoded::from_str(query)
        .map_err(|e| bad("date", format!("expected date=YYYY-MM-DD: {e}")))?;
    let day = match &q.date {
        None => Utc::now().date_naive(),
        Some(d) => {
            let day = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|e| bad("date", format!("{d:?} is not YYYY-MM-DD: {e}")))?;
            // unwrap: midnight exists on every date.
            in_range("date", d, day.and_hms_opt(0, 0, 0).unwrap().and_utc())?;
            day
        }
    };
    // unwrap: midnight exists on every date.
    let from = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let to = (from + Duration::days(1)).min(Utc::now());
    if to <= from {
        return Err(bad("date", "is in the future"));
    }
    let m = h.merged(&agent, from, to).await?;
    if m.records.is_empty() && m.before.is_empty() && !h.known_agent(&agent).await {
        return Err(HistoryError::NotFound(format!(
            "no agent with id {agent:?} and no history for it"
        )));
    }
    let mut out = json!({
        "agentId": agent, "date": day.format("%Y-%m-%d").to_string(), "timeZone": "UTC",
        "from": iso(from), "to": iso(to), "warnings": m.warnings,
    });
    for kind in Kind::ALL {
        let before = m.before.iter().find(|r| r.kind == kind);
        let recs: Vec<&HistoryRecord> = m.records.iter().filter(|r| r.kind == kind).collect();
        let v = match time_in_state(before, &recs, from, to) {
            Some((covered_from, totals)) => json!({
                "coveredFrom": iso(covered_from),
                "coveredMs": (to - covered_from).num_milliseconds(),
                "totalsMs": totals,
                "records": recs.len(),
                "sources": {
                    "journal": recs.iter().filter(|r| r.source == Source::Journal).count()
                        + usize::from(before.is_some_and(|b| b.source == Source::Journal)),
                    "genesys_analytics": recs.iter().filter(|r| r.source == Source::GenesysAnalytics).count()
                        + usize::from(before.is_some_and(|b| b.source == Source::GenesysAnalytics)),
                },
            }),
            None => Value::Null,
        };
        out[kind.as_str()] = v;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at: i64, state: &str) -> HistoryRecord {
        let at = crate::store::journal::from_ms(at);
        HistoryRecord {
            id: None,
            source: Source::Journal,
            event_id: None,
            agent_id: "a".into(),
            kind: Kind::Presence,
            origin: None,
            at,
            previous: None,
            current: StateRef {
                state: state.into(),
                definition_id: None,
                label: None,
                since: at,
            },
            previous_duration_ms: None,
        }
    }

    /// The totals add up to the covered interval, with or without the
    /// state at `from`, and a record before `from` counts from `from`.
    #[test]
    fn summary_adds_up() {
        let (from, to) = (
            crate::store::journal::from_ms(1_000),
            crate::store::journal::from_ms(10_000),
        );
        let b = rec(0, "OFFLINE");
        let r1 = rec(2_000, "AVAILABLE");
        let r2 = rec(5_500, "BREAK");
        let r3 = rec(5_500, "MEAL");
        let (cf, t) = time_in_state(Some(&b), &[&r1, &r2, &r3], from, to).unwrap();
        assert_eq!(cf, from);
        assert_eq!(t.values().sum::<i64>(), 9_000);
        assert_eq!(t["OFFLINE"], 1_000);
        assert_eq!(t["MEAL"], 4_500);
        let (cf, t) = time_in_state(None, &[&r1, &r2], from, to).unwrap();
        assert_eq!(cf, r1.at);
        assert_eq!(t.values().sum::<i64>(), 8_000);
        assert!(time_in_state(None, &[], from, to).is_none());
    }

    /// CSV quotes fields that need it.
    #[test]
    fn csv_quotes() {
        let mut r = rec(0, "AVAILABLE");
        r.current.label = Some("Lunch, \"long\"".into());
        let csv = to_csv(&[r]);
        assert!(csv.contains("\"Lunch, \"\"long\"\"\""), "{csv}");
        assert_eq!(csv.lines().count(), 2);
    }
}
