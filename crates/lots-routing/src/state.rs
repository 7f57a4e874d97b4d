//! A tenant's routing state in memory: its officers, their open load, busy time and bookings,
//! and who served which company. Only the tenant's writer (see `writer`) holds and changes it;
//! it is loaded from Postgres when the writer starts and after a failed batch, and kept current
//! from the writer's own decisions.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lots_domain::calendar::WorkCalendar;
use lots_domain::slots::{self, Interval, SlotQuery};
use lots_domain::tenant::TenantConfig;
use sqlx::{FromRow, PgConnection};

use crate::plan::{self, Candidate};

/// How far back loaded busy time and bookings reach (a slot is never searched in the past).
const LOOKBACK_DAYS: i64 = 1;

/// One officer as the writer sees them.
#[derive(Debug, Clone)]
pub struct OfficerState {
    pub id: String,
    pub unit: String,
    pub competences: Vec<String>,
    pub capacity: i64,
    /// Offered and accepted tasks.
    pub open_tasks: i64,
    pub last_assigned_at: Option<DateTime<Utc>>,
    /// Calendar busy time and active bookings, sorted by start.
    pub busy: Vec<Interval>,
    calendar: WorkCalendar,
}

impl OfficerState {
    fn add_busy(&mut self, iv: Interval) {
        let at = self.busy.partition_point(|b| b.start <= iv.start);
        self.busy.insert(at, iv);
    }

    /// Free time in the query's window, keeping `buffer` around busy time.
    pub fn free(&self, query: &SlotQuery, buffer: Duration) -> Vec<Interval> {
        let working: Vec<Interval> = self
            .calendar
            .working_intervals(query.not_before, query.not_after)
            .into_iter()
            .map(|(s, e)| Interval::new(s, e))
            .collect();
        let reach = buffer.max(Duration::zero());
        let end = self.busy.partition_point(|b| b.start < query.not_after + reach);
        let busy: Vec<Interval> =
            self.busy[..end].iter().filter(|b| b.end + reach > query.not_before).copied().collect();
        slots::free_time(&working, &busy, buffer)
    }
}

/// Everything the writer decides with, for one tenant.
pub struct TenantState {
    pub config: Arc<TenantConfig>,
    pub officers: HashMap<String, OfficerState>,
    /// Active officer ids per competence, in configuration order.
    by_competence: HashMap<String, Vec<String>>,
    /// (company org nr, competence) → officers who served the company in it.
    served: HashMap<(String, String), Vec<String>>,
}

impl TenantState {
    /// Loads the tenant's officers, load, busy time, bookings and continuity from Postgres.
    pub async fn load(conn: &mut PgConnection, config: Arc<TenantConfig>, now: DateTime<Utc>) -> sqlx::Result<Self> {
        let tenant = config.kommunkod.clone();
        let mut state =
            TenantState { config, officers: HashMap::new(), by_competence: HashMap::new(), served: HashMap::new() };
        let ids: Vec<String> = state.config.officers.iter().map(|o| o.id.clone()).collect();
        for row in officer_rows(&mut *conn, &tenant, &ids).await? {
            state.insert_officer(row);
        }
        for row in busy_rows(&mut *conn, &tenant, &ids, now).await? {
            if let Some(o) = state.officers.get_mut(&row.0) {
                o.add_busy(Interval::new(row.1, row.2));
            }
        }
        let served: Vec<(String, String, String)> =
            sqlx::query_as("SELECT company_key, competence, officer_id FROM company_officers WHERE tenant = $1")
                .bind(&tenant)
                .fetch_all(&mut *conn)
                .await?;
        for (org, competence, officer) in served {
            state.served.entry((org, competence)).or_default().push(officer);
        }
        Ok(state)
    }

    /// The state of a tenant nobody has routed for yet: every configured officer, no open tasks,
    /// no busy time (what the writer starts from on an empty database; benchmarks build on it).
    pub fn from_config(config: Arc<TenantConfig>) -> Self {
        let mut state =
            TenantState { config, officers: HashMap::new(), by_competence: HashMap::new(), served: HashMap::new() };
        let rows: Vec<OfficerRow> = state
            .config
            .officers
            .iter()
            .map(|o| OfficerRow {
                id: o.id.clone(),
                unit: o.unit.clone(),
                competences: o.competences.clone(),
                capacity: i32::try_from(o.capacity).unwrap_or(i32::MAX),
                last_assigned_at: None,
                open_tasks: 0,
            })
            .collect();
        for row in rows {
            state.insert_officer(row);
        }
        state
    }

    /// Re-reads some officers (after a change made in SQL: a decline, an ended case, busy time).
    pub async fn reload_officers(
        &mut self,
        conn: &mut PgConnection,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        let tenant = self.config.kommunkod.clone();
        for row in officer_rows(&mut *conn, &tenant, ids).await? {
            self.insert_officer(row);
        }
        for row in busy_rows(&mut *conn, &tenant, ids, now).await? {
            if let Some(o) = self.officers.get_mut(&row.0) {
                o.add_busy(Interval::new(row.1, row.2));
            }
        }
        Ok(())
    }

    fn insert_officer(&mut self, row: OfficerRow) {
        let Some(cfg) = self.config.officer(&row.id) else { return };
        let calendar = WorkCalendar::for_officer(&self.config, cfg);
        if !self.officers.contains_key(&row.id) {
            for c in &row.competences {
                self.by_competence.entry(c.clone()).or_default().push(row.id.clone());
            }
        }
        self.officers.insert(
            row.id.clone(),
            OfficerState {
                id: row.id,
                unit: row.unit,
                competences: row.competences,
                capacity: i64::from(row.capacity),
                open_tasks: row.open_tasks,
                last_assigned_at: row.last_assigned_at,
                busy: Vec::new(),
                calendar,
            },
        );
    }

    /// How many active officers hold `competence`, and the best `limit` of those with spare
    /// capacity for a seat of it for the company `company_key`, in [`plan::order`]'s order.
    /// Ranked over the state itself, so only the officers kept are copied out.
    pub fn ranked(&self, competence: &str, company_key: &str, limit: usize) -> (usize, Vec<Candidate>) {
        // No key (a case from before company keys): no continuity, rather than one shared company.
        let served = (!company_key.is_empty())
            .then(|| self.served.get(&(company_key.to_owned(), competence.to_owned())))
            .flatten();
        let holders: Vec<&OfficerState> =
            self.by_competence.get(competence).into_iter().flatten().filter_map(|id| self.officers.get(id)).collect();
        let mut ranked: Vec<(&OfficerState, bool)> = holders
            .iter()
            .filter(|o| o.capacity - o.open_tasks > 0)
            .map(|o| (*o, served.is_some_and(|s| s.contains(&o.id))))
            .collect();
        fn key<'a>((o, served): &(&'a OfficerState, bool)) -> plan::RankKey<'a> {
            plan::rank(*served, o.capacity - o.open_tasks, o.last_assigned_at, o.id.as_str())
        }
        let by_key = |a: &(&OfficerState, bool), b: &(&OfficerState, bool)| key(a).cmp(&key(b));
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit, by_key);
            ranked.truncate(limit);
        }
        // The key is a total order, so an unstable sort gives `plan::order`'s order.
        ranked.sort_unstable_by(by_key);
        let candidates = ranked
            .into_iter()
            .map(|(o, served_company)| Candidate {
                officer_id: o.id.clone(),
                unit: o.unit.clone(),
                open_tasks: o.open_tasks,
                capacity: o.capacity,
                last_assigned_at: o.last_assigned_at,
                served_company,
            })
            .collect();
        (holders.len(), candidates)
    }

    /// Free time of `officers` in the query's window.
    pub fn free(&self, officers: &[String], query: &SlotQuery, buffer: Duration) -> HashMap<String, Vec<Interval>> {
        officers.iter().filter_map(|id| Some((id.clone(), self.officers.get(id)?.free(query, buffer)))).collect()
    }

    /// Records a seat the writer just offered: a booking, one more open task, continuity.
    pub fn offered(&mut self, officer: &str, company_key: &str, competence: &str, slot: Interval, now: DateTime<Utc>) {
        if let Some(o) = self.officers.get_mut(officer) {
            o.add_busy(slot);
            o.open_tasks += 1;
            o.last_assigned_at = Some(now);
        }
        if company_key.is_empty() {
            return;
        }
        let served = self.served.entry((company_key.to_owned(), competence.to_owned())).or_default();
        if !served.iter().any(|s| s == officer) {
            served.push(officer.to_owned());
        }
    }

    /// One fewer open task (a completed task).
    pub fn task_closed(&mut self, officer: &str) {
        if let Some(o) = self.officers.get_mut(officer) {
            o.open_tasks = (o.open_tasks - 1).max(0);
        }
    }

    /// The calendar the window is computed on.
    pub fn calendar(&self) -> WorkCalendar {
        WorkCalendar::for_tenant(&self.config)
    }
}

#[derive(FromRow)]
struct OfficerRow {
    id: String,
    unit: String,
    competences: Vec<String>,
    capacity: i32,
    last_assigned_at: Option<DateTime<Utc>>,
    open_tasks: i64,
}

async fn officer_rows(conn: &mut PgConnection, tenant: &str, ids: &[String]) -> sqlx::Result<Vec<OfficerRow>> {
    sqlx::query_as(
        "SELECT o.id, o.unit, o.competences, o.capacity, o.last_assigned_at,
            COALESCE(t.n, 0) AS open_tasks
         FROM officers o
         LEFT JOIN (SELECT officer_id, count(*) AS n FROM tasks
                    WHERE tenant = $1 AND officer_id = ANY ($2) AND status IN ('offered', 'accepted')
                    GROUP BY officer_id) t ON t.officer_id = o.id
         WHERE o.tenant = $1 AND o.id = ANY ($2) AND o.active",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await
}

async fn busy_rows(
    conn: &mut PgConnection,
    tenant: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, DateTime<Utc>, DateTime<Utc>)>> {
    let from = now - Duration::days(LOOKBACK_DAYS);
    sqlx::query_as(
        "SELECT officer_id, lower(during), upper(during) FROM busy
           WHERE tenant = $1 AND officer_id = ANY ($2) AND upper(during) > $3
         UNION ALL
         SELECT officer_id, lower(during), upper(during) FROM bookings
           WHERE active AND tenant = $1 AND officer_id = ANY ($2) AND upper(during) > $3
         ORDER BY 2",
    )
    .bind(tenant)
    .bind(ids)
    .bind(from)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// The best few are exactly the head of the whole ranking, continuity and load included.
    #[test]
    fn the_best_few_are_the_head_of_the_whole_order() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/norrkoping.toml");
        let mut config = TenantConfig::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let originals = config.officers.clone();
        config.officers = (0..6)
            .flat_map(|i| {
                originals.iter().map(move |o| {
                    let mut o = o.clone();
                    o.id = format!("{}~{i}", o.id);
                    o
                })
            })
            .collect();
        let mut state = TenantState::from_config(Arc::new(config.clone()));
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap();
        // Uneven load and continuity: every third officer took a few seats, some for company "a".
        for (n, o) in config.officers.iter().enumerate().filter(|(n, _)| n % 3 == 0) {
            let competence = &o.competences[0];
            let company = if n % 2 == 0 { "a" } else { "b" };
            for k in 0..(n % 5) {
                let at = now + Duration::minutes((n * 7 + k) as i64);
                state.offered(&o.id, company, competence, Interval::new(at, at + Duration::minutes(30)), at);
            }
        }
        let competences: std::collections::BTreeSet<&String> =
            config.officers.iter().flat_map(|o| &o.competences).collect();
        for competence in competences {
            for company in ["a", "b", ""] {
                let (holders, all) = state.ranked(competence, company, usize::MAX);
                assert!(holders >= all.len());
                let ids = |c: &[Candidate]| c.iter().map(|c| c.officer_id.clone()).collect::<Vec<_>>();
                assert_eq!(ids(&plan::order(all.clone())), ids(&all), "{competence}: ranked in order's order");
                for limit in [1, 3, 12] {
                    let (_, best) = state.ranked(competence, company, limit);
                    assert_eq!(ids(&best), ids(&all[..limit.min(all.len())]), "{competence}, {company}, best {limit}");
                }
            }
        }
    }
}
