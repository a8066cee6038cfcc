//! Client filters: which agents a snapshot or a stream carries. Parsed from
//! query parameters (`?division=&queue=&presence=&routing=&agent=`) or from
//! the `filter` object of a WebSocket `subscribe` message, in both cases
//! comma-joined or repeated. Dimensions combine with AND, values within one
//! dimension with OR; an empty dimension matches everything.

use serde_json::Value;

use crate::model::{RoutingStatus, SystemPresence};

use super::agent::AgentView;

/// A normalised filter (sorted, deduplicated), usable as a cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Division ids.
    pub divisions: Vec<String>,
    /// Queue ids: the agent is a member of at least one.
    pub queues: Vec<String>,
    /// System presences.
    pub presences: Vec<SystemPresence>,
    /// Routing statuses.
    pub routing: Vec<RoutingStatus>,
    /// Agent (user) ids.
    pub agents: Vec<String>,
}

/// A bad filter value: which parameter, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{param}`: {reason}")]
pub struct FilterError {
    /// The parameter or filter key at fault.
    pub param: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Filter {
    /// True when no dimension restricts anything.
    pub fn is_empty(&self) -> bool {
        self.divisions.is_empty()
            && self.queues.is_empty()
            && self.presences.is_empty()
            && self.routing.is_empty()
            && self.agents.is_empty()
    }

    /// Adds one raw value (possibly comma-joined) for a key. Unknown keys
    /// return `Ok(false)` so callers can handle their own parameters.
    pub fn add(&mut self, key: &str, raw: &str) -> Result<bool, FilterError> {
        let parts = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
        let bad = |reason: String| FilterError {
            param: key.to_owned(),
            reason,
        };
        match key {
            "division" => self.divisions.extend(parts.map(str::to_owned)),
            "queue" => self.queues.extend(parts.map(str::to_owned)),
            "agent" => self.agents.extend(parts.map(str::to_owned)),
            "presence" => {
                for p in parts {
                    let sp = SystemPresence::parse(p).ok_or_else(|| {
                        bad(format!(
                            "unknown system presence {p:?}; expected one of {}",
                            SystemPresence::ALL.map(|s| s.upper_snake()).join(",")
                        ))
                    })?;
                    self.presences.push(sp);
                }
            }
            "routing" => {
                for p in parts {
                    let rs = RoutingStatus::parse(p).ok_or_else(|| {
                        bad(format!(
                            "unknown routing status {p:?}; expected one of {}",
                            RoutingStatus::ALL.map(|s| s.as_str()).join(",")
                        ))
                    })?;
                    self.routing.push(rs);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Sorts and deduplicates every dimension (so equal filters compare equal).
    pub fn normalise(mut self) -> Filter {
        fn nd<T: Ord>(v: &mut Vec<T>) {
            v.sort();
            v.dedup();
        }
        nd(&mut self.divisions);
        nd(&mut self.queues);
        nd(&mut self.presences);
        nd(&mut self.routing);
        nd(&mut self.agents);
        self
    }

    /// Parses the `filter` object of a `subscribe` message: the same keys as
    /// the query parameters, each a string (comma-joined) or an array of
    /// strings. Unknown keys are refused.
    pub fn from_json(v: &Value) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        let obj = match v {
            Value::Null => return Ok(f),
            Value::Object(o) => o,
            _ => {
                return Err(FilterError {
                    param: "filter".into(),
                    reason: "must be an object".into(),
                })
            }
        };
        for (k, val) in obj {
            let bad = |reason: &str| FilterError {
                param: format!("filter.{k}"),
                reason: reason.to_owned(),
            };
            let prefixed = |e: FilterError| FilterError {
                param: format!("filter.{}", e.param),
                reason: e.reason,
            };
            let known = match val {
                Value::String(s) => f.add(k, s).map_err(prefixed)?,
                Value::Array(items) => {
                    // An empty array is "no restriction", but the key must be known.
                    let mut known = f.add(k, "").map_err(prefixed)?;
                    for it in items {
                        let s = it
                            .as_str()
                            .ok_or_else(|| bad("array items must be strings"))?;
                        known = f.add(k, s).map_err(prefixed)?;
                    }
                    known
                }
                Value::Null => f.add(k, "").map_err(prefixed)?,
                _ => return Err(bad("must be a string or an array of strings")),
            };
            if !known {
                return Err(bad(
                    "unknown filter key; expected division, queue, presence, routing or agent",
                ));
            }
        }
        Ok(f.normalise())
    }

    /// Does this agent match an optional filter (`None` matches everything)?
    pub fn admits(filter: Option<&Filter>, a: &AgentView) -> bool {
        match filter {
            None => true,
            Some(f) => f.matches(a),
        }
    }

    /// Does this agent match?
    pub fn matches(&self, a: &AgentView) -> bool {
        (self.agents.is_empty() || self.agents.contains(&a.id))
            && (self.divisions.is_empty() || self.divisions.contains(&a.division.id))
            && (self.queues.is_empty() || a.queues.iter().any(|q| self.queues.contains(q)))
            && (self.presences.is_empty()
                || a.presence
                    .as_ref()
                    .is_some_and(|p| self.presences.contains(&p.system_presence)))
            && (self.routing.is_empty()
                || a.routing_status
                    .as_ref()
                    .is_some_and(|r| self.routing.contains(&r.status)))
    }
}

/// A resume point: `<epoch>:<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The registry's epoch (one per process start).
    pub epoch: u64,
    /// The last batch the client has applied.
    pub seq: u64,
}

impl Cursor {
    /// Parses `<epoch>:<seq>`, both unsigned decimal integers.
    pub fn parse(param: &str, s: &str) -> Result<Cursor, FilterError> {
        let bad = || FilterError {
            param: param.to_owned(),
            reason: format!(
                "{s:?} is not a resume point; expected <epoch>:<seq>, e.g. 1718000000000:42"
            ),
        };
        let (e, q) = s.trim().split_once(':').ok_or_else(bad)?;
        Ok(Cursor {
            epoch: e.parse().map_err(|_| bad())?,
            seq: q.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.epoch, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Comma-joined and repeated parameters give the same normalised filter.
    #[test]
    fn comma_and_repeat_are_equal() {
        let mut a = Filter::default();
        a.add("presence", "on queue,BREAK").unwrap();
        let mut b = Filter::default();
        b.add("presence", "BREAK").unwrap();
        b.add("presence", "ON_QUEUE").unwrap();
        assert_eq!(a.normalise(), b.normalise());
    }

    /// Bad values name the parameter.
    #[test]
    fn bad_values_are_named() {
        let mut f = Filter::default();
        assert_eq!(f.add("presence", "LUNCH").unwrap_err().param, "presence");
        let e = Filter::from_json(&serde_json::json!({"routing": ["NOPE"]})).unwrap_err();
        assert_eq!(e.param, "filter.routing");
        let e = Filter::from_json(&serde_json::json!({"colour": "red"})).unwrap_err();
        assert_eq!(e.param, "filter.colour");
        assert!(Cursor::parse("since", "12").is_err());
        assert_eq!(
            Cursor::parse("since", "12:3").unwrap(),
            Cursor { epoch: 12, seq: 3 }
        );
    }
}
