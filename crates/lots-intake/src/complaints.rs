//! Klagomål: register, acknowledge, answer, close and reassign. Each change writes the complaint,
//! its event and its audit entry in one transaction; sla keeps the complaint's guarantee.

use chrono::{DateTime, Utc};
use lots_domain::{ComplaintCategory, ComplaintStatus, OrgNr, TenantConfig, complaint};
use lots_events::{
    ComplaintAbout, ComplaintAcknowledged, ComplaintAnswered, ComplaintClosed, ComplaintReassigned,
    ComplaintRegistered, Handler, Payload, Views,
};
use lots_platform::audit;
use lots_platform::auth::{Caller, Role};
use lots_proto::v1 as pb;
use sqlx::{FromRow, PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

use crate::cases::Cases;
use crate::error::{Error, Result};
use crate::registers::{self, Emit};
use crate::validate::{self, Check, Violation};

/// A stored complaint.
#[derive(Clone, FromRow)]
pub struct ComplaintRow {
    pub id: Uuid,
    pub tenant: String,
    pub reference: String,
    pub category: String,
    pub channel: String,
    pub status: String,
    pub about_case_id: Option<Uuid>,
    pub about_case_reference: String,
    pub about_unit: String,
    pub about_officer: String,
    pub description: String,
    pub anonymous: bool,
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    pub org_nr: String,
    pub company_name: String,
    pub secrecy: bool,
    pub handler: String,
    pub handler_unit: String,
    pub reassign_reason: Option<String>,
    pub answer: Option<String>,
    pub action_taken: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub registered_by: String,
    pub version: i64,
    pub views: String,
    pub request_fingerprint: String,
}

impl ComplaintRow {
    /// The complaint's status.
    pub fn status(&self) -> Result<ComplaintStatus> {
        self.status.parse().map_err(Error::Corrupt)
    }
}

/// What a complaint is about, once resolved against the register and the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct About {
    pub case: Option<(Uuid, String)>,
    pub unit: String,
    pub officer: String,
}

/// A registration that passed validation.
pub struct NewComplaint {
    pub idempotency_key: String,
    pub category: ComplaintCategory,
    pub channel: lots_domain::Channel,
    /// The case as given (id or reference), resolved in the transaction.
    pub about_case: String,
    pub about_unit: String,
    pub about_officer: String,
    pub description: String,
    pub anonymous: bool,
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    pub org_nr: Option<OrgNr>,
    pub company_name: String,
    pub secrecy: bool,
}

impl NewComplaint {
    /// A digest of the request, so a retry with the key is recognised without storing it twice.
    fn fingerprint(&self) -> String {
        let request = serde_json::json!([
            self.category.as_str(),
            self.channel.as_str(),
            self.about_case,
            self.about_unit,
            self.about_officer,
            self.description,
            self.anonymous,
            self.contact_name,
            self.contact_phone,
            self.contact_email,
            self.org_nr.as_ref().map(|o| o.expose().to_owned()),
            self.company_name,
            self.secrecy,
        ]);
        Uuid::new_v5(&Uuid::NAMESPACE_OID, request.to_string().as_bytes()).to_string()
    }
}

/// The category of a request, if known.
pub fn category(value: i32) -> Option<ComplaintCategory> {
    use pb::ComplaintCategory as C;
    Some(match C::try_from(value).ok()? {
        C::Unspecified => return None,
        C::Bemotande => ComplaintCategory::Bemotande,
        C::Information => ComplaintCategory::Information,
        C::Tillganglighet => ComplaintCategory::Tillganglighet,
        C::Kompetens => ComplaintCategory::Kompetens,
        C::Rattssakerhet => ComplaintCategory::Rattssakerhet,
        C::Handlaggningstid => ComplaintCategory::Handlaggningstid,
        C::Ovrigt => ComplaintCategory::Ovrigt,
    })
}

/// The proto form of a category.
pub fn category_to_pb(c: ComplaintCategory) -> pb::ComplaintCategory {
    use pb::ComplaintCategory as C;
    match c {
        ComplaintCategory::Bemotande => C::Bemotande,
        ComplaintCategory::Information => C::Information,
        ComplaintCategory::Tillganglighet => C::Tillganglighet,
        ComplaintCategory::Kompetens => C::Kompetens,
        ComplaintCategory::Rattssakerhet => C::Rattssakerhet,
        ComplaintCategory::Handlaggningstid => C::Handlaggningstid,
        ComplaintCategory::Ovrigt => C::Ovrigt,
    }
}

/// Validates a `RegisterComplaintRequest`: every bad field is named.
pub fn validate(req: &pb::RegisterComplaintRequest, tenant: &TenantConfig) -> Result<NewComplaint, Vec<Violation>> {
    let mut c = Check::default();
    let idempotency_key = c.text("idempotency_key", &req.idempotency_key, true, 128);
    let category = category(req.category);
    if category.is_none() {
        c.add(
            "category",
            "is required (bemotande, information, tillganglighet, kompetens, rattssakerhet, handlaggningstid or ovrigt)",
        );
    }
    let channel = validate::channel(req.channel);
    if channel.is_none() {
        c.add("channel", "is required (phone, email, e_service, visit or company_visit)");
    }
    let about = req.about.clone().unwrap_or_default();
    let about_case = c.text("about.case", &about.case, false, 64);
    let about_unit = c.text("about.unit", &about.unit, false, 64);
    let about_officer = c.text("about.officer", &about.officer, false, 64);
    let given = [&about_case, &about_unit, &about_officer].iter().filter(|s| !s.is_empty()).count();
    if given > 1 {
        c.add("about", "name at most one of case, unit and officer");
    }
    if !about_unit.is_empty() && tenant.unit(&about_unit).is_none() {
        c.add("about.unit", format!("{about_unit:?} is not a unit of {}", tenant.name));
    }
    if !about_officer.is_empty() && tenant.officer(&about_officer).is_none() {
        c.add("about.officer", format!("{about_officer:?} is not an officer of {}", tenant.name));
    }
    if !about_case.is_empty()
        && Uuid::parse_str(&about_case).is_err()
        && lots_domain::Reference::parse(&about_case).is_none()
    {
        c.add("about.case", "must be a case id or a reference like NKP-2026-000123");
    }
    let description = c.text("description", &req.description, true, 4000);
    let contact = req.contact.clone().unwrap_or_default();
    let (mut contact_name, mut contact_phone, mut contact_email) = (String::new(), String::new(), String::new());
    if req.anonymous {
        if [&contact.name, &contact.phone, &contact.email].iter().any(|s| !s.trim().is_empty()) {
            c.add("contact", "must be empty for an anonymous complaint (no contact is stored)");
        }
    } else {
        contact_name = c.text("contact.name", &contact.name, true, 200);
        contact_email = c.text("contact.email", &contact.email, false, 254);
        if !contact_email.is_empty() && !validate::is_email(&contact_email) {
            c.add("contact.email", "is not an e-mail address like namn@foretag.se");
        }
        if !contact.phone.trim().is_empty() {
            match validate::phone_e164(&contact.phone) {
                Ok(p) => contact_phone = p,
                Err(msg) => c.add("contact.phone", msg),
            }
        }
        if contact_email.is_empty() && contact.phone.trim().is_empty() {
            c.add("contact", "needs a phone number or an e-mail address to send the answer to");
        }
    }
    if req.anonymous && !req.org_nr.trim().is_empty() {
        c.add("org_nr", "must be empty for an anonymous complaint (a sole trader's number names the complainant)");
    }
    if req.anonymous && !req.company_name.trim().is_empty() {
        c.add("company_name", "must be empty for an anonymous complaint");
    }
    let org_nr = if req.org_nr.trim().is_empty() || req.anonymous {
        None
    } else {
        match OrgNr::parse(&req.org_nr) {
            Ok(nr) => Some(nr),
            Err(e) => {
                c.add("org_nr", format!("is not a valid organisationsnummer or personnummer: {e}"));
                None
            }
        }
    };
    let company_name = c.text("company_name", &req.company_name, false, 200);
    match (c.0.is_empty(), category, channel) {
        (true, Some(category), Some(channel)) => Ok(NewComplaint {
            idempotency_key,
            category,
            channel,
            about_case,
            about_unit,
            about_officer,
            description,
            anonymous: req.anonymous,
            contact_name,
            contact_phone,
            contact_email,
            org_nr,
            company_name,
            secrecy: req.secrecy,
        }),
        _ => Err(c.0),
    }
}

/// Who handles a complaint about `about`: the manager of the unit concerned (for a case, the
/// unit of its coordinating seat), else the näringslivschef; never the officer complained about.
pub fn handler_for(tenant: &TenantConfig, about: &About, case_unit: Option<&str>) -> Handler {
    let officer_unit = tenant.officer(&about.officer).map(|o| o.unit.as_str());
    let unit = [Some(about.unit.as_str()).filter(|u| !u.is_empty()), officer_unit, case_unit]
        .into_iter()
        .flatten()
        .find_map(|u| tenant.unit(u));
    let chef = &tenant.naringslivschef;
    let officer_id = match unit {
        Some(u) if u.manager != about.officer => u.manager.clone(),
        _ => chef.clone(),
    };
    let unit = tenant.officer(&officer_id).map(|o| o.unit.clone()).unwrap_or_default();
    Handler { officer_id, unit }
}

/// A lifecycle step on a complaint.
#[derive(Debug)]
pub enum Step {
    Acknowledge,
    Answer { answer: String, action_taken: String },
    Close,
    Reassign { handler: String, reason: String },
}

impl Cases {
    /// Registers a validated complaint, or returns the one first registered under its key.
    #[instrument(name = "intake.complaints.register", skip_all, fields(complaint_id))]
    pub async fn register_complaint(&self, new: &NewComplaint, caller: &Caller) -> Result<ComplaintRow> {
        let tenant = caller.config.clone();
        let code = tenant.kommunkod.as_str();
        if let Some(first) = by_key(&self.pool, code, &new.idempotency_key).await? {
            return same(first, new);
        }
        let mut tx = self.pool.begin().await?;
        let about = resolve(&mut tx, code, new).await?;
        let case_unit = match &about.case {
            Some((id, _)) => case_unit(&mut tx, &tenant, *id).await?,
            None => None,
        };
        let handler = handler_for(&tenant, &about, case_unit.as_deref());
        let now = self.clock.now();
        let (reference, number) =
            registers::next_reference(&mut tx, code, &tenant.reference_prefix, complaint::COMPLAINTS, now).await?;
        let id = Uuid::now_v7();
        let actor = caller.actor();
        let inserted = sqlx::query_as::<_, ComplaintRow>(
            "INSERT INTO complaints (id, tenant, reference, ref_year, ref_number, category, channel, status,
                about_case_id, about_case_reference, about_unit, about_officer, description, anonymous,
                contact_name, contact_phone, contact_email, org_nr, company_name, secrecy, handler, handler_unit,
                registered_at, updated_at, registered_by, version, idempotency_key, request_fingerprint)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'registered', $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19, $20, $21, $22, $22, $23, 1, $24, $25)
             RETURNING *",
        )
        .bind(id)
        .bind(code)
        .bind(reference.to_string())
        .bind(reference.year)
        .bind(number)
        .bind(new.category.as_str())
        .bind(new.channel.as_str())
        .bind(about.case.as_ref().map(|c| c.0))
        .bind(about.case.as_ref().map(|c| c.1.clone()).unwrap_or_default())
        .bind(&about.unit)
        .bind(&about.officer)
        .bind(&new.description)
        .bind(new.anonymous)
        .bind(&new.contact_name)
        .bind(&new.contact_phone)
        .bind(&new.contact_email)
        .bind(new.org_nr.as_ref().map(|o| o.expose()).unwrap_or_default())
        .bind(&new.company_name)
        .bind(new.secrecy)
        .bind(&handler.officer_id)
        .bind(&handler.unit)
        .bind(now)
        .bind(&actor)
        .bind(&new.idempotency_key)
        .bind(new.fingerprint())
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            // A concurrent retry with the same key won the race; answer with its complaint.
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("complaints_idempotency_key") => {
                tx.rollback().await?;
                let first = by_key(&self.pool, code, &new.idempotency_key)
                    .await?
                    .ok_or_else(|| Error::Corrupt("idempotency key vanished".into()))?;
                return same(first, new);
            }
            Err(e) => return Err(e.into()),
        };
        let event = ComplaintRegistered {
            reference: row.reference.clone(),
            category: row.category.clone(),
            channel: row.channel.clone(),
            about: ComplaintAbout {
                case_id: row.about_case_id,
                case_reference: row.about_case_reference.clone(),
                unit: row.about_unit.clone(),
                officer: row.about_officer.clone(),
            },
            anonymous: row.anonymous,
            secrecy: row.secrecy,
            handler,
        };
        let row = self.emit_complaint(&mut tx, row, &actor, event).await?;
        let changes = serde_json::json!({ "status": row.status, "category": row.category, "reference": row.reference,
            "handler": row.handler, "about_case": row.about_case_id });
        let mut objects = vec![row.id.to_string()];
        objects.extend(row.about_case_id.map(|c| c.to_string()));
        let entry = audit::Entry::change(caller, "ComplaintService/RegisterComplaint", objects, changes);
        audit::record(&mut *tx, &entry).await?;
        tx.commit().await?;
        self.relay.notify_one();
        tracing::Span::current().record("complaint_id", tracing::field::display(row.id));
        tracing::info!(category = %row.category, "complaint registered");
        Ok(row)
    }

    /// Applies a lifecycle step; a retry with the same idempotency `key` changes nothing.
    #[instrument(name = "intake.complaints.step", skip_all, fields(complaint_id = %id))]
    pub async fn complaint_step(
        &self,
        caller: &Caller,
        id: Uuid,
        step: Step,
        key: Option<&str>,
    ) -> Result<ComplaintRow> {
        let tenant = caller.tenant.as_str();
        let mut tx = self.pool.begin().await?;
        let row: ComplaintRow = sqlx::query_as("SELECT * FROM complaints WHERE id = $1 AND tenant = $2 FOR UPDATE")
            .bind(id)
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?
            .filter(|r| may_see(caller, r))
            .ok_or_else(|| not_found(&id.to_string()))?;
        if registers::already_applied(&mut tx, tenant, key, id, &format!("{step:?}"), &row.reference).await? {
            return Ok(row);
        }
        let reassigning = matches!(step, Step::Reassign { .. });
        if !may_handle(caller, &row, reassigning) {
            return Err(Error::Forbidden(if reassigning {
                "only the handler's enhetschef or the näringslivschef reassigns a complaint".into()
            } else {
                "only the complaint's handler, their enhetschef or the näringslivschef handles it".into()
            }));
        }
        let status = row.status()?;
        let now = self.clock.now();
        let to = match &step {
            Step::Acknowledge => ComplaintStatus::Acknowledged,
            Step::Answer { .. } => ComplaintStatus::Answered,
            Step::Close => ComplaintStatus::Closed,
            Step::Reassign { .. } => status,
        };
        if !reassigning && let Some(why) = status.refuses(to, row.anonymous) {
            return Err(Error::Precondition(why));
        }
        let actor = caller.actor();
        let (rpc, row) = match step {
            Step::Acknowledge => {
                let row = update(&mut tx, id, "status = 'acknowledged', acknowledged_at = $2", now, &[]).await?;
                (
                    "ComplaintService/AcknowledgeComplaint",
                    self.emit_complaint(&mut tx, row, &actor, ComplaintAcknowledged {}).await?,
                )
            }
            Step::Answer { answer, action_taken } => {
                let set = "status = 'answered', answered_at = $2, answer = $3, action_taken = $4,
                           acknowledged_at = COALESCE(acknowledged_at, $2)";
                let row = update(&mut tx, id, set, now, &[&answer, &action_taken]).await?;
                (
                    "ComplaintService/AnswerComplaint",
                    self.emit_complaint(&mut tx, row, &actor, ComplaintAnswered {}).await?,
                )
            }
            Step::Close => {
                let row = update(&mut tx, id, "status = 'closed', closed_at = $2", now, &[]).await?;
                (
                    "ComplaintService/CloseComplaint",
                    self.emit_complaint(&mut tx, row, &actor, ComplaintClosed {}).await?,
                )
            }
            Step::Reassign { handler, reason } => {
                if status == ComplaintStatus::Closed {
                    return Err(Error::Precondition("a closed complaint is not reassigned".into()));
                }
                let Some(officer) = caller.config.officer(&handler) else {
                    let description = format!("{handler:?} is not an officer of {}", caller.config.name);
                    return Err(Error::Invalid(vec![Violation { field: "handler", description }]));
                };
                if handler == row.about_officer {
                    let description = "must not be the officer the complaint is about".to_owned();
                    return Err(Error::Invalid(vec![Violation { field: "handler", description }]));
                }
                let unit = officer.unit.clone();
                let set = "handler = $3, handler_unit = $4, reassign_reason = $5";
                let row = update(&mut tx, id, set, now, &[&handler, &unit, &reason]).await?;
                let data = ComplaintReassigned { handler: Handler { officer_id: handler, unit } };
                ("ComplaintService/ReassignComplaint", self.emit_complaint(&mut tx, row, &actor, data).await?)
            }
        };
        let changes = serde_json::json!({ "from": status.as_str(), "to": row.status, "handler": row.handler });
        audit::record(&mut *tx, &audit::Entry::change(caller, rpc, vec![id.to_string()], changes)).await?;
        tx.commit().await?;
        self.relay.notify_one();
        tracing::info!(from = %status, to = %row.status, "complaint changed");
        Ok(row)
    }

    /// Writes the next event of the complaint and advances its version and views.
    async fn emit_complaint<T: Payload>(
        &self,
        tx: &mut PgConnection,
        row: ComplaintRow,
        actor: &str,
        data: T,
    ) -> Result<ComplaintRow> {
        let mut views: Views = registers::views(&row.views)?;
        let e = Emit { tenant: &row.tenant, id: row.id, version: row.version, actor, at: row.updated_at };
        registers::enqueue(tx, &self.subjects, &mut views, e, data).await?;
        Ok(sqlx::query_as("UPDATE complaints SET views = $2 WHERE id = $1 RETURNING *")
            .bind(row.id)
            .bind(registers::views_json(&views)?)
            .fetch_one(&mut *tx)
            .await?)
    }
}

/// Sets `set` (which may use $2 = now and $3, $4 = `texts`) and counts one more version.
async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    set: &str,
    now: DateTime<Utc>,
    texts: &[&str],
) -> Result<ComplaintRow> {
    // `set` is one of the fixed assignments above; no request text reaches the statement.
    let sql = format!("UPDATE complaints SET {set}, updated_at = $2, version = version + 1 WHERE id = $1 RETURNING *");
    let mut q = sqlx::query_as::<_, ComplaintRow>(sqlx::AssertSqlSafe(sql)).bind(id).bind(now);
    for t in texts {
        q = q.bind(*t);
    }
    Ok(q.fetch_one(conn).await?)
}

fn same(first: ComplaintRow, new: &NewComplaint) -> Result<ComplaintRow> {
    if first.request_fingerprint == new.fingerprint() {
        Ok(first)
    } else {
        Err(Error::KeyReused { key: new.idempotency_key.clone(), reference: first.reference })
    }
}

async fn by_key(db: impl PgExecutor<'_>, tenant: &str, key: &str) -> Result<Option<ComplaintRow>> {
    Ok(sqlx::query_as("SELECT * FROM complaints WHERE tenant = $1 AND idempotency_key = $2")
        .bind(tenant)
        .bind(key)
        .fetch_optional(db)
        .await?)
}

/// Resolves the case a complaint is about (by id or reference) in the tenant's register.
async fn resolve(conn: &mut PgConnection, tenant: &str, new: &NewComplaint) -> Result<About> {
    let mut about = About { case: None, unit: new.about_unit.clone(), officer: new.about_officer.clone() };
    if new.about_case.is_empty() {
        return Ok(about);
    }
    let found: Option<(Uuid, String)> = match Uuid::parse_str(&new.about_case) {
        Ok(id) => sqlx::query_as("SELECT id, reference FROM cases WHERE id = $1 AND tenant = $2").bind(id),
        Err(_) => sqlx::query_as("SELECT id, reference FROM cases WHERE reference = $1 AND tenant = $2")
            .bind(new.about_case.clone()),
    }
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(case) = found else {
        let description = format!("no case {} in this municipality", new.about_case);
        return Err(Error::Invalid(vec![Violation { field: "about.case", description }]));
    };
    about.case = Some(case);
    Ok(about)
}

/// The unit of the case's coordinating seat, once routed.
async fn case_unit(conn: &mut PgConnection, tenant: &TenantConfig, case_id: Uuid) -> Result<Option<String>> {
    let seats: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT s.officer_id, s.unit, c.case_type FROM case_seats s JOIN cases c ON c.id = s.case_id
         WHERE s.case_id = $1 ORDER BY s.officer_id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?;
    let coordinating = seats.first().and_then(|s| tenant.case_type(&s.2)).and_then(|t| t.coordinating_competence());
    let seat = seats
        .iter()
        .find(|(officer, _, _)| {
            tenant.officer(officer).is_some_and(|o| coordinating.is_some_and(|c| o.competences.iter().any(|k| k == c)))
        })
        .or(seats.first());
    Ok(seat.map(|s| s.1.clone()))
}

/// Whether `caller` may read the complaint: tenant-wide roles all; an enhetschef those handled in
/// or about their units; a handläggare those they handle.
pub fn may_see(caller: &Caller, row: &ComplaintRow) -> bool {
    match caller.units() {
        None => true,
        Some(units) => {
            caller.officer.as_deref() == Some(row.handler.as_str())
                || units.contains(&row.handler_unit)
                || (!row.about_unit.is_empty() && units.contains(&row.about_unit))
        }
    }
}

/// Whether `caller` may act on the complaint (or, `reassigning`, give it to someone else). Nobody
/// acts on a complaint about themselves, except the näringslivschef, who has no one above.
fn may_handle(caller: &Caller, row: &ComplaintRow, reassigning: bool) -> bool {
    let me = caller.officer.as_deref().unwrap_or_default();
    if !me.is_empty() && me == row.about_officer && !caller.has(Role::Naringslivschef) {
        return false;
    }
    let manages = caller.units().is_some_and(|u| u.contains(&row.handler_unit)) && caller.has(Role::Enhetschef);
    let is_handler = me == row.handler;
    caller.has(Role::Naringslivschef) || manages || (!reassigning && is_handler)
}

/// The error for a complaint that does not exist (or that the caller may not see).
pub fn not_found(what: &str) -> Error {
    Error::NotFound(format!("no complaint {what}"))
}

/// Which complaints a list asks for.
pub struct Filter {
    pub status: Option<ComplaintStatus>,
    pub category: Option<ComplaintCategory>,
    pub handler: Option<String>,
    pub about_case: Option<String>,
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Complaints of the tenant matching `f`, newest first (the caller's reach is applied after).
pub async fn list(db: impl PgExecutor<'_>, tenant: &str, f: &Filter) -> Result<Vec<ComplaintRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM complaints WHERE tenant = $1
           AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR category = $3)
           AND ($4::text IS NULL OR handler = $4)
           AND ($5::text IS NULL OR about_case_id::text = $5 OR about_case_reference = $5)
           AND ($6::uuid IS NULL OR id < $6)
         ORDER BY id DESC LIMIT $7",
    )
    .bind(tenant)
    .bind(f.status.map(ComplaintStatus::as_str))
    .bind(f.category.map(ComplaintCategory::as_str))
    .bind(f.handler.as_deref())
    .bind(f.about_case.as_deref())
    .bind(f.before)
    .bind(f.limit)
    .fetch_all(db)
    .await?)
}

/// A complaint by id or reference.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: Option<Uuid>,
    reference: Option<&str>,
) -> Result<Option<ComplaintRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM complaints WHERE tenant = $1 AND ($2::uuid IS NULL OR id = $2) AND ($3::text IS NULL OR reference = $3)",
    )
    .bind(tenant)
    .bind(id)
    .bind(reference)
    .fetch_optional(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantConfig {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/norrkoping.toml");
        TenantConfig::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_unit_manager_handles_a_complaint_and_never_the_officer_complained_about() {
        let t = tenant();
        let about_unit = About { unit: "bygglov".into(), ..Default::default() };
        assert_eq!(handler_for(&t, &about_unit, None).officer_id, "mats.lundgren");
        let about_officer = About { officer: "emma.forsberg".into(), ..Default::default() };
        assert_eq!(handler_for(&t, &about_officer, None).officer_id, "mats.lundgren");
        let about_manager = About { officer: "mats.lundgren".into(), ..Default::default() };
        assert_eq!(handler_for(&t, &about_manager, None).officer_id, t.naringslivschef);
        let about_nothing = About::default();
        let h = handler_for(&t, &about_nothing, None);
        assert_eq!((h.officer_id.as_str(), h.unit.as_str()), ("karin.ekstrom", "naringsliv"));
        assert_eq!(handler_for(&t, &About::default(), Some("tillstand")).officer_id, "magnus.persson");
    }
}
