//! `lots admin …`: operator commands (DeadLetterService on each service).

use anyhow::Context as _;
use lots_proto::v1 as pb;
use pb::dead_letter_service_client::DeadLetterServiceClient;
use serde::Serialize;

use crate::args::{AdminCommand, AuditCommand, DeadLettersCommand, Global, ServiceArg};
use crate::client;
use crate::output::{Out, Table, local, rfc3339};

/// Runs one `lots admin` command.
pub async fn run(global: &Global, command: AdminCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    let AdminCommand::DeadLetters(command) = command;
    match command {
        DeadLettersCommand::List { service, open, limit } => {
            let mut letters = dead_letters(global, service).await?;
            let req = pb::ListDeadLettersRequest { open_only: open, limit };
            let list = letters.list_dead_letters(req).await.context("list dead letters")?.into_inner().letters;
            if out.json {
                for l in &list {
                    out.json_line(&LetterView::new(l))?;
                }
            } else if list.is_empty() {
                out.text("no dead letters\n");
            } else {
                let mut table = Table::new(&["EVENT", "TYPE", "CASE", "VERSION", "STATUS", "SINCE", "ERROR"]);
                for l in &list {
                    let status =
                        if l.held_behind.is_empty() { l.status.clone() } else { format!("{} (held)", l.status) };
                    table.row(vec![
                        l.event_id.clone(),
                        l.event_type.clone(),
                        l.case_id.clone(),
                        l.version.to_string(),
                        status,
                        local(l.created_at.as_ref()),
                        l.error.chars().take(60).collect(),
                    ]);
                }
                out.text(&table.render());
            }
        }
        DeadLettersCommand::Show { service, event_id } => {
            let mut letters = dead_letters(global, service).await?;
            let l = letters
                .get_dead_letter(pb::GetDeadLetterRequest { event_id })
                .await
                .context("show dead letter")?
                .into_inner();
            if out.json {
                out.json_line(&LetterView::new(&l))?;
            } else {
                let mut text = String::new();
                for (k, v) in [
                    ("event", l.event_id.clone()),
                    ("type", l.event_type.clone()),
                    ("subject", l.subject.clone()),
                    ("case", l.case_id.clone()),
                    ("from", format!("{} version {}", l.source, l.version)),
                    ("status", l.status.clone()),
                    ("held behind", l.held_behind.clone()),
                    ("deliveries", l.deliveries.to_string()),
                    ("since", local(l.created_at.as_ref())),
                    ("error", l.error.clone()),
                    ("resolved by", l.resolved_by.clone()),
                    ("note", l.note.clone()),
                ] {
                    if !v.is_empty() {
                        text.push_str(&format!("{k:<12} {v}\n"));
                    }
                }
                text.push_str(&format!("\n{}\n", l.payload));
                out.text(&text);
            }
        }
        DeadLettersCommand::Replay { service, event_id, note } => {
            let mut letters = dead_letters(global, service).await?;
            let req = pb::ReplayDeadLetterRequest { event_id, note };
            let r = letters.replay_dead_letter(req).await.context("replay dead letter")?.into_inner();
            resolution(&out, "replayed", &r)?;
        }
        DeadLettersCommand::Skip { service, event_id, note } => {
            let mut letters = dead_letters(global, service).await?;
            let req = pb::SkipDeadLetterRequest { event_id, note };
            let r = letters.skip_dead_letter(req).await.context("skip dead letter")?.into_inner();
            resolution(&out, "skipped", &r)?;
        }
    }
    Ok(())
}

/// An authenticated channel to `service`.
async fn channel(global: &Global, service: ServiceArg) -> anyhow::Result<lots_platform::auth::AuthedChannel> {
    let (name, url) = match service {
        ServiceArg::Intake => ("intake", &global.intake),
        ServiceArg::Routing => ("routing", &global.routing),
        ServiceArg::Sla => ("sla", &global.sla),
    };
    let token = crate::login::token(global)?;
    client::authed(name, url, &token, global.ca_file.as_deref()).await
}

async fn dead_letters(
    global: &Global,
    service: ServiceArg,
) -> anyhow::Result<DeadLetterServiceClient<lots_platform::auth::AuthedChannel>> {
    Ok(DeadLetterServiceClient::new(channel(global, service).await?))
}

/// Runs one `lots audit` command.
pub async fn audit(global: &Global, command: AuditCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    let service = match command {
        AuditCommand::Verify { service } => service,
        AuditCommand::Case { case, csv } => {
            let id = client::case_id(global, &case).await?;
            return extract(global, out, vec![id], csv).await;
        }
        AuditCommand::Company { org_nr, csv } => {
            let mut intake = client::intake(global).await?;
            let mut ids = Vec::new();
            let mut page_token = String::new();
            loop {
                let req =
                    pb::ListCasesRequest { org_nr: org_nr.clone(), page_size: 500, page_token, ..Default::default() };
                let page = intake.list_cases(req).await.context("find the company's cases")?.into_inner();
                ids.extend(page.cases.into_iter().map(|c| c.id));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if ids.is_empty() {
                out.text("no cases for that number, so nothing was read about it\n");
                return Ok(());
            }
            return extract(global, out, ids, csv).await;
        }
    };
    let services = match service {
        Some(s) => vec![s],
        None => vec![ServiceArg::Intake, ServiceArg::Routing, ServiceArg::Sla],
    };
    let mut table = Table::new(&["SERVICE", "ENTRIES", "HEAD", "UNCHAINED", "CHAIN"]);
    let mut broken = Vec::new();
    for s in services {
        let name = format!("{s:?}").to_lowercase();
        let mut audit = pb::audit_service_client::AuditServiceClient::new(channel(global, s).await?);
        let v = audit
            .verify_audit_chain(pb::VerifyAuditChainRequest {})
            .await
            .context("verify the audit chain")?
            .into_inner();
        if out.json {
            #[derive(Serialize)]
            struct View<'a> {
                service: &'a str,
                entries: u64,
                head_seq: i64,
                head_hash: &'a str,
                ok: bool,
                first_broken_seq: i64,
                reason: &'a str,
                unchained: u64,
            }
            out.json_line(&View {
                service: &name,
                entries: v.entries,
                head_seq: v.head_seq,
                head_hash: &v.head_hash,
                ok: v.ok,
                first_broken_seq: v.first_broken_seq,
                reason: &v.reason,
                unchained: v.unchained,
            })?;
        }
        let chain = if v.ok { "ok".to_owned() } else { format!("BROKEN at {}: {}", v.first_broken_seq, v.reason) };
        let head =
            if v.head_hash.is_empty() { String::new() } else { format!("{} {}", v.head_seq, &v.head_hash[..16]) };
        table.row(vec![name.clone(), v.entries.to_string(), head, v.unchained.to_string(), chain]);
        if !v.ok {
            broken.push(format!("{name} at entry {}", v.first_broken_seq));
        }
    }
    if !out.json {
        out.text(&table.render());
    }
    if !broken.is_empty() {
        anyhow::bail!("the audit chain is broken: {}", broken.join(", "));
    }
    Ok(())
}

fn resolution(out: &Out, what: &str, r: &pb::DeadLetterResolution) -> anyhow::Result<()> {
    if out.json {
        #[derive(Serialize)]
        struct View<'a> {
            letter: Option<LetterView<'a>>,
            also_applied: &'a [String],
            still_held: &'a str,
        }
        let view = View {
            letter: r.letter.as_ref().map(LetterView::new),
            also_applied: &r.also_applied,
            still_held: &r.still_held,
        };
        return out.json_line(&view);
    }
    let id = r.letter.as_ref().map(|l| l.event_id.as_str()).unwrap_or("?");
    let mut text = format!("{id} {what}\n");
    for a in &r.also_applied {
        text.push_str(&format!("{a} followed it and was applied\n"));
    }
    if !r.still_held.is_empty() {
        text.push_str(&format!("{} is still held: see `lots admin dead-letters show`\n", r.still_held));
    }
    out.text(&text);
    Ok(())
}

/// A dead letter as `--json` prints it.
#[derive(Serialize)]
struct LetterView<'a> {
    event_id: &'a str,
    event_type: &'a str,
    subject: &'a str,
    case_id: &'a str,
    source: &'a str,
    version: u64,
    status: &'a str,
    held_behind: &'a str,
    deliveries: i64,
    created_at: Option<String>,
    error: &'a str,
    resolved_by: &'a str,
    resolved_at: Option<String>,
    note: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    payload: &'a str,
}

impl<'a> LetterView<'a> {
    fn new(l: &'a pb::DeadLetter) -> Self {
        LetterView {
            event_id: &l.event_id,
            event_type: &l.event_type,
            subject: &l.subject,
            case_id: &l.case_id,
            source: &l.source,
            version: l.version,
            status: &l.status,
            held_behind: &l.held_behind,
            deliveries: l.deliveries,
            created_at: rfc3339(l.created_at.as_ref()),
            error: &l.error,
            resolved_by: &l.resolved_by,
            resolved_at: rfc3339(l.resolved_at.as_ref()),
            note: &l.note,
            payload: &l.payload,
        }
    }
}

/// Every service's entries about `objects`, merged oldest first, as a table, CSV or JSON lines.
async fn extract(global: &Global, out: Out, objects: Vec<String>, csv: bool) -> anyhow::Result<()> {
    let mut rows: Vec<(&'static str, pb::AuditEntry)> = Vec::new();
    for (name, s) in [("intake", ServiceArg::Intake), ("routing", ServiceArg::Routing), ("sla", ServiceArg::Sla)] {
        let mut audit = pb::audit_service_client::AuditServiceClient::new(channel(global, s).await?);
        let req = pb::ListAuditEntriesRequest { objects: objects.clone() };
        let mut stream = audit.list_audit_entries(req).await.context("read the audit log")?.into_inner();
        while let Some(entry) = stream.message().await.context("read the audit log")? {
            rows.push((name, entry));
        }
    }
    rows.sort_by_key(|(_, e)| e.at.as_ref().map(|t| (t.seconds, t.nanos)));
    let who =
        |e: &pb::AuditEntry| if e.name.is_empty() { e.subject.clone() } else { format!("{} ({})", e.name, e.subject) };
    if csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "at",
            "service",
            "subject",
            "name",
            "roles",
            "client_id",
            "action",
            "rpc",
            "objects",
            "result",
            "reason",
            "trace_id",
            "seq",
        ])?;
        for (service, e) in &rows {
            w.write_record([
                rfc3339(e.at.as_ref()).unwrap_or_default(),
                (*service).to_owned(),
                e.subject.clone(),
                e.name.clone(),
                e.roles.join(" "),
                e.client_id.clone(),
                e.action.clone(),
                e.rpc.clone(),
                e.objects.join(" "),
                e.result.clone(),
                e.reason.clone(),
                e.trace_id.clone(),
                e.seq.to_string(),
            ])?;
        }
        out.text(&String::from_utf8(w.into_inner()?)?);
    } else if out.json {
        for (service, e) in &rows {
            out.json_line(&serde_json::json!({
                "at": rfc3339(e.at.as_ref()), "service": service, "subject": e.subject, "name": e.name,
                "roles": e.roles, "client_id": e.client_id, "action": e.action, "rpc": e.rpc,
                "objects": e.objects, "result": e.result, "reason": e.reason, "seq": e.seq,
            }))?;
        }
    } else if rows.is_empty() {
        out.text("nobody has read or changed it\n");
    } else {
        let mut table = Table::new(&["AT", "SERVICE", "WHO", "ROLES", "ACTION", "RPC", "RESULT"]);
        for (service, e) in &rows {
            table.row(vec![
                local(e.at.as_ref()),
                (*service).to_owned(),
                who(e),
                e.roles.join(","),
                e.action.clone(),
                e.rpc.clone(),
                e.result.clone(),
            ]);
        }
        out.text(&table.render());
    }
    Ok(())
}
