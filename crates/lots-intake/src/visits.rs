//! Company visits (företagsbesök) and their follow-ups. A visit, its follow-ups and their events
//! are written in one transaction; sla keeps each follow-up's due date as a commitment.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use lots_domain::{OrgNr, TenantConfig, VisitKind, complaint};
use lots_events::{Handler, Views, VisitFollowUpAdded, VisitFollowUpDone, VisitRegistered};
use lots_platform::audit;
use lots_platform::auth::{Caller, Role};
use lots_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

use crate::cases::Cases;
use crate::error::{Error, Result};
use crate::registers::{self, Emit};
use crate::validate::{Check, Violation};

/// A stored visit.
#[derive(Clone, FromRow)]
pub struct VisitRow {
    pub id: Uuid,
    pub tenant: String,
    pub reference: String,
    pub org_nr: String,
    pub company_name: String,
    pub visit_date: NaiveDate,
    pub kind: String,
    pub participants: Vec<String>,
    pub company_participants: String,
    pub topics: Vec<String>,
    pub notes: String,
    pub story: String,
    pub story_consent: bool,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub registered_by: String,
    pub version: i64,
    pub views: String,
    pub request_fingerprint: String,
}

/// A stored follow-up item.
#[derive(Clone, FromRow)]
pub struct FollowUpRow {
    pub id: Uuid,
    pub visit_id: Uuid,
    pub number: i32,
    pub what: String,
    pub owner: String,
    pub owner_unit: String,
    pub due_date: NaiveDate,
    pub done_at: Option<DateTime<Utc>>,
    pub done_note: Option<String>,
}

/// One of the company's participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub name: String,
    pub role: String,
}

/// A follow-up that passed validation.
#[derive(Debug, Clone)]
pub struct NewFollowUp {
    pub what: String,
    pub owner: String,
    pub owner_unit: String,
    pub due_date: NaiveDate,
}

/// A registration that passed validation.
pub struct NewVisit {
    pub idempotency_key: String,
    pub org_nr: OrgNr,
    pub company_name: String,
    pub date: NaiveDate,
    pub kind: VisitKind,
    pub participants: Vec<String>,
    pub company_participants: Vec<Participant>,
    pub topics: Vec<String>,
    pub notes: String,
    pub follow_ups: Vec<NewFollowUp>,
    pub story: String,
    pub story_consent: bool,
    /// See [`request_fingerprint`].
    pub fingerprint: String,
}

/// What makes two registrations "the same" for the idempotency key: a digest of the request as
/// sent, so a retry is recognised before it is validated again (a follow-up due "today" is
/// still the first request after midnight) and the table holds no number.
pub fn request_fingerprint(req: &pb::RegisterVisitRequest) -> String {
    let follow_ups: Vec<_> = req.follow_ups.iter().map(|f| [&f.what, &f.owner, &f.due_date]).collect();
    let company: Vec<_> = req.company_participants.iter().map(|p| [&p.name, &p.role]).collect();
    let story = req.story.as_ref().map(|s| (&s.text, s.consent_to_publish));
    let request = serde_json::json!([
        req.org_nr,
        req.company_name,
        req.date,
        req.kind,
        req.participants,
        company,
        req.topics,
        req.notes,
        follow_ups,
        story,
    ]);
    Uuid::new_v5(&Uuid::NAMESPACE_OID, request.to_string().as_bytes()).to_string()
}

/// Today in Stockholm.
fn today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&lots_domain::calendar::TZ).date_naive()
}

/// Validates one follow-up; `field` prefixes its fields' names in violations.
pub(crate) fn follow_up(
    c: &mut Check,
    tenant: &TenantConfig,
    f: &pb::NewFollowUp,
    fields: [&'static str; 3],
    which: &str,
    now: DateTime<Utc>,
) -> Option<NewFollowUp> {
    let what = c.text(fields[0], &f.what, true, 1000);
    let owner = f.owner.trim().to_owned();
    let owner_unit = match tenant.officer(&owner) {
        Some(o) => Some(o.unit.clone()),
        None => {
            let why = if owner.is_empty() { "is required".to_owned() } else { format!("{owner:?} is not an officer") };
            c.add(fields[1], format!("{which}{why}"));
            None
        }
    };
    let due_date = match NaiveDate::parse_from_str(f.due_date.trim(), "%Y-%m-%d") {
        Ok(d) if d < today(now) => {
            c.add(fields[2], format!("{which}must be today or later"));
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            c.add(fields[2], format!("{which}must be a date like 2026-12-10"));
            None
        }
    };
    Some(NewFollowUp { what, owner, owner_unit: owner_unit?, due_date: due_date? })
}

/// Validates a `RegisterVisitRequest`: every bad field is named.
pub fn validate(
    req: &pb::RegisterVisitRequest,
    tenant: &TenantConfig,
    now: DateTime<Utc>,
) -> Result<NewVisit, Vec<Violation>> {
    let mut c = Check::default();
    let idempotency_key = c.text("idempotency_key", &req.idempotency_key, true, 128);
    let org_nr = match OrgNr::parse(&req.org_nr) {
        Ok(nr) => Some(nr),
        Err(_) if req.org_nr.trim().is_empty() => {
            c.add("org_nr", "is required");
            None
        }
        Err(e) => {
            c.add("org_nr", format!("is not a valid organisationsnummer or personnummer: {e}"));
            None
        }
    };
    let company_name = c.text("company_name", &req.company_name, true, 200);
    let date = match NaiveDate::parse_from_str(req.date.trim(), "%Y-%m-%d") {
        Ok(d) if d > today(now) => {
            c.add("date", "must not be in the future (register a visit once it took place)");
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            c.add("date", "must be a date like 2026-12-03");
            None
        }
    };
    let kind = match pb::VisitKind::try_from(req.kind) {
        Ok(pb::VisitKind::Lotsande) => Some(VisitKind::Lotsande),
        Ok(pb::VisitKind::Other) => Some(VisitKind::Other),
        _ => {
            c.add("kind", "is required (lotsande or other)");
            None
        }
    };
    let participants: Vec<String> = req.participants.iter().map(|p| p.trim().to_owned()).collect();
    if participants.is_empty() {
        c.add("participants", "must name at least one of the municipality's officers");
    }
    for p in &participants {
        if tenant.officer(p).is_none() {
            c.add("participants", format!("{p:?} is not an officer of {}", tenant.name));
        }
    }
    let mut company_participants = Vec::new();
    for (i, p) in req.company_participants.iter().enumerate() {
        if p.name.trim().is_empty() {
            c.add("company_participants.name", format!("participant {} needs a name", i + 1));
        }
        company_participants.push(Participant { name: p.name.trim().to_owned(), role: p.role.trim().to_owned() });
    }
    let topics: Vec<String> = req.topics.iter().map(|t| t.trim().to_owned()).collect();
    for t in &topics {
        if !tenant.visits.topics.contains(t) {
            c.add("topics", format!("{t:?} is not a topic; known: {}", tenant.visits.topics.join(", ")));
        }
    }
    let notes = c.text("notes", &req.notes, false, 8000);
    let fields = ["follow_ups.what", "follow_ups.owner", "follow_ups.due_date"];
    let follow_ups: Vec<Option<NewFollowUp>> = req
        .follow_ups
        .iter()
        .enumerate()
        .map(|(i, f)| follow_up(&mut c, tenant, f, fields, &format!("follow-up {}: ", i + 1), now))
        .collect();
    let story = req.story.clone().unwrap_or_default();
    let story_text = c.text("story.text", &story.text, false, 8000);
    match (c.0.is_empty(), org_nr, date, kind) {
        (true, Some(org_nr), Some(date), Some(kind)) => Ok(NewVisit {
            idempotency_key,
            org_nr,
            company_name,
            date,
            kind,
            participants,
            company_participants,
            topics,
            notes,
            follow_ups: follow_ups.into_iter().flatten().collect(),
            story: story_text,
            story_consent: story.consent_to_publish,
            fingerprint: request_fingerprint(req),
        }),
        _ => Err(c.0),
    }
}

impl Cases {
    /// Registers a validated visit with its follow-ups, or returns the one first registered
    /// under its key.
    #[instrument(name = "intake.visits.register", skip_all, fields(visit_id))]
    pub async fn register_visit(&self, new: &NewVisit, caller: &Caller) -> Result<(VisitRow, Vec<FollowUpRow>)> {
        let tenant = caller.config.clone();
        let code = tenant.kommunkod.as_str();
        if let Some(first) = by_key(&self.pool, code, &new.idempotency_key).await? {
            return self.same(first, new).await;
        }
        let mut tx = self.pool.begin().await?;
        let now = self.clock.now();
        let (reference, number) =
            registers::next_reference(&mut tx, code, &tenant.reference_prefix, complaint::VISITS, now).await?;
        let id = Uuid::now_v7();
        let actor = caller.actor();
        let participants_json = serde_json::to_string(&new.company_participants).map_err(lots_platform::Error::from)?;
        let inserted = sqlx::query_as::<_, VisitRow>(
            "INSERT INTO visits (id, tenant, reference, ref_year, ref_number, org_nr, company_name, visit_date, kind,
                participants, company_participants, topics, notes, story, story_consent, registered_at, updated_at,
                registered_by, version, idempotency_key, request_fingerprint)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, 1, $18, $19)
             RETURNING *",
        )
        .bind(id)
        .bind(code)
        .bind(reference.to_string())
        .bind(reference.year)
        .bind(number)
        .bind(new.org_nr.expose())
        .bind(&new.company_name)
        .bind(new.date)
        .bind(new.kind.as_str())
        .bind(&new.participants)
        .bind(participants_json)
        .bind(&new.topics)
        .bind(&new.notes)
        .bind(&new.story)
        .bind(new.story_consent)
        .bind(now)
        .bind(&actor)
        .bind(&new.idempotency_key)
        .bind(&new.fingerprint)
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("visits_idempotency_key") => {
                tx.rollback().await?;
                let first = by_key(&self.pool, code, &new.idempotency_key)
                    .await?
                    .ok_or_else(|| Error::Corrupt("idempotency key vanished".into()))?;
                return self.same(first, new).await;
            }
            Err(e) => return Err(e.into()),
        };
        let mut views = Views::default();
        let registered = VisitRegistered {
            reference: row.reference.clone(),
            company_key: self.company_keys.key(code, &new.org_nr),
            company_name: row.company_name.clone(),
            date: row.visit_date,
            kind: row.kind.clone(),
            participants: row.participants.clone(),
            topics: row.topics.clone(),
            story_consent: row.story_consent,
        };
        let e = Emit { tenant: code, id, version: 1, actor: &actor, at: now };
        registers::enqueue(&mut tx, &self.subjects, &mut views, e, registered).await?;
        let mut row = row;
        for f in &new.follow_ups {
            row = self.add_follow_up_in(&mut tx, row, &mut views, f, &actor, now).await?;
        }
        let row = save_views(&mut tx, row.id, &views).await?;
        let changes =
            serde_json::json!({ "reference": row.reference, "kind": row.kind, "follow_ups": new.follow_ups.len() });
        let entry = audit::Entry::change(caller, "VisitService/RegisterVisit", vec![row.id.to_string()], changes);
        audit::record(&mut *tx, &entry).await?;
        tx.commit().await?;
        self.relay.notify_one();
        tracing::Span::current().record("visit_id", tracing::field::display(row.id));
        tracing::info!(kind = %row.kind, "visit registered");
        let follow_ups = follow_ups(&self.pool, row.id).await?;
        Ok((row, follow_ups))
    }

    /// Adds a follow-up to a visit; a retry with the same idempotency `key` changes nothing.
    pub async fn add_follow_up(
        &self,
        caller: &Caller,
        id: Uuid,
        f: NewFollowUp,
        key: Option<&str>,
    ) -> Result<VisitRow> {
        let mut tx = self.pool.begin().await?;
        let row = lock(&mut tx, &caller.tenant, id).await?;
        // The visit's participants, their enhetschefs and the näringslivschef promise follow-ups.
        let me = caller.officer.as_deref().unwrap_or_default();
        let manages = |p: &String| {
            caller.config.officer(p).and_then(|o| caller.config.unit(&o.unit)).is_some_and(|u| u.manager == me)
        };
        let took_part = row.participants.iter().any(|p| p == me || (caller.has(Role::Enhetschef) && manages(p)));
        if !(took_part || caller.has(Role::Naringslivschef)) {
            return Err(Error::Forbidden(
                "only the visit's participants, their enhetschef or the näringslivschef add follow-ups".into(),
            ));
        }
        let call = format!("add:{}:{}:{}", f.owner, f.due_date, f.what);
        if registers::already_applied(&mut tx, &caller.tenant, key, id, &call, &row.reference).await? {
            return Ok(row);
        }
        let mut views = registers::views(&row.views)?;
        let now = self.clock.now();
        let row = self.add_follow_up_in(&mut tx, row, &mut views, &f, &caller.actor(), now).await?;
        let row = save_views(&mut tx, row.id, &views).await?;
        let changes = serde_json::json!({ "follow_up": "added", "owner": f.owner, "due_date": f.due_date });
        audit::record(
            &mut *tx,
            &audit::Entry::change(caller, "VisitService/AddFollowUp", vec![id.to_string()], changes),
        )
        .await?;
        tx.commit().await?;
        self.relay.notify_one();
        Ok(row)
    }

    /// Marks follow-up `number` of a visit done, by its owner, their enhetschef or the
    /// näringslivschef.
    pub async fn complete_follow_up(
        &self,
        caller: &Caller,
        id: Uuid,
        number: u32,
        note: String,
        key: Option<&str>,
    ) -> Result<VisitRow> {
        let mut tx = self.pool.begin().await?;
        let row = lock(&mut tx, &caller.tenant, id).await?;
        if registers::already_applied(&mut tx, &caller.tenant, key, id, &format!("done:{number}"), &row.reference)
            .await?
        {
            return Ok(row);
        }
        let item: FollowUpRow = sqlx::query_as("SELECT * FROM visit_follow_ups WHERE visit_id = $1 AND number = $2")
            .bind(id)
            .bind(number as i32)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                let description = format!("visit {} has no follow-up {number}", row.reference);
                Error::Invalid(vec![Violation { field: "number", description }])
            })?;
        let manages = caller.has(Role::Enhetschef) && caller.units().is_some_and(|u| u.contains(&item.owner_unit));
        if !(caller.officer.as_deref() == Some(item.owner.as_str()) || manages || caller.has(Role::Naringslivschef)) {
            return Err(Error::Forbidden(
                "only the follow-up's owner, their enhetschef or the näringslivschef marks it done".into(),
            ));
        }
        if item.done_at.is_some() {
            return Err(Error::Precondition(format!("follow-up {number} is already done")));
        }
        let now = self.clock.now();
        sqlx::query("UPDATE visit_follow_ups SET done_at = $2, done_note = $3 WHERE id = $1")
            .bind(item.id)
            .bind(now)
            .bind(&note)
            .execute(&mut *tx)
            .await?;
        let row = bump(&mut tx, id, now).await?;
        let mut views = registers::views(&row.views)?;
        let e = Emit { tenant: &row.tenant, id, version: row.version, actor: &caller.actor(), at: now };
        registers::enqueue(&mut tx, &self.subjects, &mut views, e, VisitFollowUpDone { follow_up_id: item.id, number })
            .await?;
        let row = save_views(&mut tx, id, &views).await?;
        let changes = serde_json::json!({ "follow_up": number, "done": true });
        let entry = audit::Entry::change(caller, "VisitService/CompleteFollowUp", vec![id.to_string()], changes);
        audit::record(&mut *tx, &entry).await?;
        tx.commit().await?;
        self.relay.notify_one();
        Ok(row)
    }

    async fn add_follow_up_in(
        &self,
        tx: &mut PgConnection,
        row: VisitRow,
        views: &mut Views,
        f: &NewFollowUp,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<VisitRow> {
        let number: i32 =
            sqlx::query_scalar("SELECT COALESCE(max(number), 0) + 1 FROM visit_follow_ups WHERE visit_id = $1")
                .bind(row.id)
                .fetch_one(&mut *tx)
                .await?;
        let follow_up_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO visit_follow_ups (id, tenant, visit_id, number, what, owner, owner_unit, due_date)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(follow_up_id)
        .bind(&row.tenant)
        .bind(row.id)
        .bind(number)
        .bind(&f.what)
        .bind(&f.owner)
        .bind(&f.owner_unit)
        .bind(f.due_date)
        .execute(&mut *tx)
        .await?;
        let row = bump(tx, row.id, now).await?;
        let data = VisitFollowUpAdded {
            follow_up_id,
            number: number as u32,
            visit_reference: row.reference.clone(),
            owner: Handler { officer_id: f.owner.clone(), unit: f.owner_unit.clone() },
            due_date: f.due_date,
        };
        let e = Emit { tenant: &row.tenant, id: row.id, version: row.version, actor, at: now };
        registers::enqueue(tx, &self.subjects, views, e, data).await?;
        Ok(row)
    }

    /// The visit first registered under `key`, if this is a retry of that request (checked before
    /// validation); an error if the key was used for another request.
    pub async fn visit_registered_under(
        &self,
        tenant: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<(VisitRow, Vec<FollowUpRow>)>> {
        let Some(first) = by_key(&self.pool, tenant, key.trim()).await? else { return Ok(None) };
        if first.request_fingerprint != fingerprint {
            return Err(Error::KeyReused { key: key.to_owned(), reference: first.reference });
        }
        let items = follow_ups(&self.pool, first.id).await?;
        Ok(Some((first, items)))
    }

    async fn same(&self, first: VisitRow, new: &NewVisit) -> Result<(VisitRow, Vec<FollowUpRow>)> {
        if first.request_fingerprint != new.fingerprint {
            return Err(Error::KeyReused { key: new.idempotency_key.clone(), reference: first.reference });
        }
        let items = follow_ups(&self.pool, first.id).await?;
        Ok((first, items))
    }
}

async fn by_key(db: impl PgExecutor<'_>, tenant: &str, key: &str) -> Result<Option<VisitRow>> {
    Ok(sqlx::query_as("SELECT * FROM visits WHERE tenant = $1 AND idempotency_key = $2")
        .bind(tenant)
        .bind(key)
        .fetch_optional(db)
        .await?)
}

async fn lock(conn: &mut PgConnection, tenant: &str, id: Uuid) -> Result<VisitRow> {
    sqlx::query_as("SELECT * FROM visits WHERE id = $1 AND tenant = $2 FOR UPDATE")
        .bind(id)
        .bind(tenant)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| not_found(&id.to_string()))
}

async fn bump(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<VisitRow> {
    Ok(sqlx::query_as("UPDATE visits SET version = version + 1, updated_at = $2 WHERE id = $1 RETURNING *")
        .bind(id)
        .bind(now)
        .fetch_one(conn)
        .await?)
}

async fn save_views(conn: &mut PgConnection, id: Uuid, views: &Views) -> Result<VisitRow> {
    Ok(sqlx::query_as("UPDATE visits SET views = $2 WHERE id = $1 RETURNING *")
        .bind(id)
        .bind(registers::views_json(views)?)
        .fetch_one(conn)
        .await?)
}

/// A visit's follow-ups in number order.
pub async fn follow_ups(db: impl PgExecutor<'_>, visit: Uuid) -> Result<Vec<FollowUpRow>> {
    Ok(sqlx::query_as("SELECT * FROM visit_follow_ups WHERE visit_id = $1 ORDER BY number")
        .bind(visit)
        .fetch_all(db)
        .await?)
}

/// The follow-ups of several visits, in visit and number order.
pub async fn follow_ups_of(db: impl PgExecutor<'_>, visits: &[Uuid]) -> Result<Vec<FollowUpRow>> {
    Ok(sqlx::query_as("SELECT * FROM visit_follow_ups WHERE visit_id = ANY ($1) ORDER BY visit_id, number")
        .bind(visits)
        .fetch_all(db)
        .await?)
}

/// A visit by id or reference.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: Option<Uuid>,
    reference: Option<&str>,
) -> Result<Option<VisitRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM visits WHERE tenant = $1 AND ($2::uuid IS NULL OR id = $2) AND ($3::text IS NULL OR reference = $3)",
    )
    .bind(tenant)
    .bind(id)
    .bind(reference)
    .fetch_optional(db)
    .await?)
}

/// Visits of the tenant, newest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: &str,
    year: Option<i32>,
    kind: Option<VisitKind>,
    owner: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<VisitRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM visits v WHERE tenant = $1
           AND ($2::int IS NULL OR extract(year FROM visit_date)::int = $2) AND ($3::text IS NULL OR kind = $3)
           AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM visit_follow_ups f
                WHERE f.visit_id = v.id AND f.owner = $4 AND f.done_at IS NULL))
           AND ($5::uuid IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6",
    )
    .bind(tenant)
    .bind(year)
    .bind(kind.map(VisitKind::as_str))
    .bind(owner)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Progress toward the yearly target in `year`, as of `now`.
pub async fn progress(
    db: &sqlx::PgPool,
    tenant: &TenantConfig,
    year: i32,
    now: DateTime<Utc>,
) -> Result<pb::VisitProgress> {
    let (lotsande, other): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE kind = 'lotsande'), count(*) FILTER (WHERE kind = 'other')
         FROM visits WHERE tenant = $1 AND extract(year FROM visit_date)::int = $2",
    )
    .bind(&tenant.kommunkod)
    .bind(year)
    .fetch_one(db)
    .await?;
    let today = today(now);
    let (open, done, overdue): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE f.done_at IS NULL), count(*) FILTER (WHERE f.done_at IS NOT NULL),
                count(*) FILTER (WHERE f.done_at IS NULL AND f.due_date < $3)
         FROM visit_follow_ups f JOIN visits v ON v.id = f.visit_id
         WHERE f.tenant = $1 AND extract(year FROM v.visit_date)::int = $2",
    )
    .bind(&tenant.kommunkod)
    .bind(year)
    .bind(today)
    .fetch_one(db)
    .await?;
    let target = tenant.visits.yearly_target;
    let days_in_year = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() { 366 } else { 365 };
    let day = match today.year() {
        y if y == year => today.ordinal(),
        y if y > year => days_in_year,
        _ => 0,
    };
    let lotsande = lotsande as u32;
    Ok(pb::VisitProgress {
        year,
        target,
        lotsande_visits: lotsande,
        other_visits: other as u32,
        percent_of_target: if target == 0 { 0 } else { (u64::from(lotsande) * 100 / u64::from(target)) as u32 },
        expected_by_today: complaint::expected_by(target, day, days_in_year),
        follow_ups_open: open as u32,
        follow_ups_done: done as u32,
        follow_ups_overdue: overdue as u32,
    })
}

/// The error for a visit that does not exist.
pub fn not_found(what: &str) -> Error {
    Error::NotFound(format!("no visit {what}"))
}
