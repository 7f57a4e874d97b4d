//! The command line: global flags, subcommands and their arguments (clap derive).

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use lots_proto::v1 as pb;

use crate::commands::report::parse_month;
use crate::commands::visit::{CompanyParticipant, FollowUpSpec, parse_date, parse_follow_up, parse_participant};

/// `lots`: talk to a running Lotsen, or run one on this machine (`lots dev`).
///
/// Exit codes: 0 ok; 2 usage or invalid argument (also when the server says so); 3 not found;
/// 4 refused (failed precondition, already exists, not allowed); 5 server unreachable or
/// unavailable; 6 not logged in or token refused; 1 other. `--json` prints one JSON object per
/// line (NDJSON).
#[derive(Debug, Parser)]
#[command(name = "lots", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every client command understands.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Intake's gRPC address (IntakeService, ComplaintService, VisitService).
    #[arg(long, global = true, env = "LOTS_INTAKE_URL", default_value = "http://127.0.0.1:50051")]
    pub intake: String,
    /// Routing's gRPC address (TaskService).
    #[arg(long, global = true, env = "LOTS_ROUTING_URL", default_value = "http://127.0.0.1:50052")]
    pub routing: String,
    /// The sla service's gRPC address (AlertService).
    #[arg(long, global = true, env = "LOTS_SLA_URL", default_value = "http://127.0.0.1:50053")]
    pub sla: String,
    /// lots-insight's gRPC address (CaseStatusService, ReportService).
    #[arg(long, global = true, env = "LOTS_INSIGHT_URL", default_value = "http://127.0.0.1:50054")]
    pub insight: String,
    /// Machine output: one JSON object per line (NDJSON); a list prints one line per item.
    #[arg(long, global = true)]
    pub json: bool,
    /// An access token to send instead of the one `lots login` saved. The municipality and
    /// who acts come from the token.
    #[arg(long, global = true, env = "LOTS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM CA certificate to trust for `https://` service URLs, beside the system's.
    #[arg(long, global = true, env = "LOTS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// What `lots` does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register and follow company cases (intake).
    #[command(subcommand)]
    Case(CaseCommand),
    /// A handläggare's task list: seats at dukat bord meetings (routing).
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// The dukat bord meeting of a case (routing).
    #[command(subcommand)]
    Meeting(MeetingCommand),
    /// Servicegaranti warnings, breaches and escalations (sla).
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Klagomål about service and bemötande: register, acknowledge, answer and close (intake).
    #[command(subcommand)]
    Complaint(ComplaintCommand),
    /// Company visits (företagsbesök), their follow-ups and the yearly target (intake).
    #[command(subcommand)]
    Visit(VisitCommand),
    /// Every servicegaranti clock of a case: due time, state and time left (sla).
    Clocks {
        /// Case id or reference (NKP-2026-000123), or a complaint's reference (NKP-K-2026-000007).
        case: String,
    },
    /// What the company sees of its case: status, history, promised dates, meeting, next step
    /// (insight).
    Status {
        /// Case id or reference (NKP-2026-000123).
        case: String,
    },
    /// Servicegaranti figures, the SKR Insikt case list and NKI results (insight).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Operator commands (admin role).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log: who read, changed or was refused what (admin role).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run Lotsen on this machine: NATS, Postgres, an OpenID provider, intake, routing, sla and
    /// insight.
    Dev(DevArgs),
    /// Log in at the municipality's OpenID issuer and keep the token for later commands.
    Login(LoginArgs),
    /// Forget the token `lots login` kept.
    Logout,
}

/// `lots report …`
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// How often the servicegaranti was kept, per month, unit, case type and commitment.
    Guarantee(GuaranteeArgs),
    /// The cases behind one row of `lots report guarantee`.
    Cases(GuaranteeCasesArgs),
    /// Closed company cases of a measurement period as SKR's Insikt case list (CSV).
    Insikt {
        /// First decision day, YYYY-MM-DD (Europe/Stockholm).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        from: NaiveDate,
        /// Last decision day, YYYY-MM-DD, included.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        to: NaiveDate,
        /// The file to write (UTF-8 with BOM, semicolon-separated, as Excel in Swedish opens it).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// NKI results of the Insikt survey.
    #[command(subcommand)]
    Nki(NkiCommand),
}

/// `lots report guarantee`
#[derive(Debug, Clone, Args)]
pub struct GuaranteeArgs {
    /// First month, YYYY-MM (Europe/Stockholm).
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
    pub from: String,
    /// Last month, YYYY-MM, included.
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
    pub to: String,
    /// Only this unit.
    #[arg(long)]
    pub unit: Option<String>,
    /// Only this case type key (or klagomal for the complaint process).
    #[arg(long)]
    pub case_type: Option<String>,
    /// Write the rows to this CSV file (UTF-8, comma-separated, with a header row).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw the share kept per unit and month into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `lots report cases`
#[derive(Debug, Clone, Args)]
pub struct GuaranteeCasesArgs {
    /// The month, YYYY-MM.
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
    pub month: String,
    /// The unit.
    #[arg(long)]
    pub unit: String,
    /// The case type key.
    #[arg(long)]
    pub case_type: String,
    /// The commitment key, e.g. first_contact.
    #[arg(long)]
    pub commitment: String,
    /// Only kept or only breached commitments; default: both.
    #[arg(long, value_enum)]
    pub outcome: Option<GuaranteeOutcomeArg>,
}

/// `lots report nki …`
#[derive(Debug, Subcommand)]
pub enum NkiCommand {
    /// Load NKI results from a CSV file with the header `area,period,nki,respondents` (comma or
    /// semicolon separated); a period loaded again is replaced.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

/// `lots audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the municipality's hash chain in each service (or one) and name the first broken link.
    Verify {
        #[arg(long, value_enum)]
        service: Option<ServiceArg>,
    },
    /// Who looked at or changed this case, in every service, oldest first.
    Case {
        /// Case id or reference.
        case: String,
        /// CSV (UTF-8) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Who looked at or changed anything about this company or person (its cases), oldest first.
    Company {
        /// Organisation number or personnummer.
        org_nr: String,
        #[arg(long)]
        csv: bool,
    },
}

/// `lots admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Events a service could not apply: list, read, replay or skip them.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
}

/// `lots admin dead-letters …`
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Dead letters of one service, newest first.
    List {
        #[arg(long, value_enum)]
        service: ServiceArg,
        /// Only those still waiting for an operator.
        #[arg(long)]
        open: bool,
        /// Most letters to show (1–1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// One dead letter with its event.
    Show {
        #[arg(long, value_enum)]
        service: ServiceArg,
        /// The event id.
        event_id: String,
    },
    /// Apply the event again (e.g. after a fix); the case's held events follow it.
    Replay {
        #[arg(long, value_enum)]
        service: ServiceArg,
        event_id: String,
        /// A note for the record.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Give the event up: the case's order moves past it and its held events follow.
    Skip {
        #[arg(long, value_enum)]
        service: ServiceArg,
        event_id: String,
        /// Why it is given up (required).
        #[arg(long)]
        note: String,
    },
}

/// A Lotsen service.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ServiceArg {
    Intake,
    Routing,
    Sla,
}

/// `lots login`
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// The issuer URL, e.g. the municipality's Entra ID tenant; `lots dev` prints its own.
    #[arg(long, env = "LOTS_ISSUER", default_value = "http://127.0.0.1:8088/0581")]
    pub issuer: String,
    /// Log in as a system (client credentials) instead of a person (device login).
    #[arg(long, env = "LOTS_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The client's secret, for --client-id.
    #[arg(long, env = "LOTS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The scope to ask for.
    #[arg(long, default_value = "lots")]
    pub scope: String,
    /// Print the token on stdout instead of keeping it (e.g. for LOTS_TOKEN).
    #[arg(long)]
    pub print: bool,
}

/// `lots case …`
#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Register a company's case.
    Register(RegisterArgs),
    /// Show one case.
    Show {
        /// Case id or reference.
        case: String,
    },
    /// List cases, newest first, following pages up to --limit.
    List(ListCasesArgs),
    /// Wait for the company (komplettering): the servicegaranti clocks pause.
    Await {
        /// Case id or reference.
        case: String,
        /// What the company must send.
        #[arg(long)]
        reason: String,
    },
    /// The company has answered: the clocks run again.
    Resume {
        /// Case id or reference.
        case: String,
    },
    /// Close the case with an outcome and the decision told to the company.
    Close {
        /// Case id or reference.
        case: String,
        #[arg(long, value_enum)]
        outcome: OutcomeArg,
        /// The decision as told to the company.
        #[arg(long)]
        decision: String,
    },
    /// Make another officer the case's owner (its coordinating handläggare): enhetschef or
    /// näringslivschef.
    Reassign {
        /// Case id or reference.
        case: String,
        /// The new owner's officer id.
        #[arg(long)]
        to: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// The company withdraws its case.
    Withdraw {
        /// Case id or reference.
        case: String,
        /// Why the company withdraws.
        #[arg(long)]
        reason: String,
    },
    /// The application is complete: legal deadlines (PBL) start counting.
    Complete {
        /// Case id or reference.
        case: String,
    },
    /// Extend the legal deadline once (PBL 9 kap. 27 §).
    Extend {
        /// Case id or reference.
        case: String,
        /// Why the investigation needs more time (told to the company).
        #[arg(long)]
        reason: String,
    },
}

/// `lots case register`
#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    /// Organisationsnummer, or a sole trader's personnummer.
    #[arg(long)]
    pub org_nr: String,
    /// The company's name.
    #[arg(long)]
    pub company: String,
    /// The contact person at the company.
    #[arg(long)]
    pub contact_name: String,
    /// The contact's phone number.
    #[arg(long)]
    pub phone: String,
    /// The contact's e-mail address.
    #[arg(long)]
    pub email: String,
    /// Case type, a key of the municipality's catalogue, e.g. restaurang_start.
    #[arg(long = "type")]
    pub case_type: String,
    /// How the company reached the municipality.
    #[arg(long, value_enum)]
    pub channel: ChannelArg,
    /// What the company wants, in a sentence or two.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Idempotency key; a retry with the same key returns the first case. Default: a new UUIDv7.
    #[arg(long)]
    pub key: Option<String>,
}

/// `lots case list`
#[derive(Debug, Clone, Args)]
pub struct ListCasesArgs {
    /// Only cases in this state.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Case type key.
    #[arg(long = "type")]
    pub case_type: Option<String>,
    /// Only this company's cases.
    #[arg(long)]
    pub org_nr: Option<String>,
    /// Most cases to show.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

/// `lots complaint …`
#[derive(Debug, Subcommand)]
pub enum ComplaintCommand {
    /// Register a complaint.
    Register(RegisterComplaintArgs),
    /// List complaints, newest first, following pages up to --limit.
    List(ListComplaintsArgs),
    /// Show one complaint.
    Show {
        /// Complaint id or reference (NKP-K-2026-000007).
        complaint: String,
    },
    /// The complainant has been told the complaint was received.
    Acknowledge {
        /// Complaint id or reference.
        complaint: String,
    },
    /// Answer the complainant, with what the municipality did about it.
    Answer {
        /// Complaint id or reference.
        complaint: String,
        /// The answer as given to the complainant.
        #[arg(long)]
        answer: String,
        /// What the municipality did about it.
        #[arg(long)]
        action_taken: String,
    },
    /// Close the complaint: once answered, or once acknowledged when it is anonymous.
    Close {
        /// Complaint id or reference.
        complaint: String,
    },
    /// Let another officer handle the complaint from now on.
    Reassign {
        /// Complaint id or reference.
        complaint: String,
        /// The new handler's officer id.
        #[arg(long)]
        to: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// `lots complaint register`
#[derive(Debug, Clone, Args)]
pub struct RegisterComplaintArgs {
    /// What the complaint is about (SKR Insikt's service factors, or övrigt).
    #[arg(long, value_enum)]
    pub category: ComplaintCategoryArg,
    /// How the complaint reached the municipality.
    #[arg(long, value_enum)]
    pub channel: ChannelArg,
    #[command(flatten)]
    pub about: ComplaintAboutArgs,
    /// What happened, in the complainant's words.
    #[arg(long)]
    pub description: String,
    /// No contact is stored and no answer is owed.
    #[arg(long)]
    pub anonymous: bool,
    /// Who complains (required unless --anonymous, with a phone or an e-mail).
    #[arg(long, conflicts_with = "anonymous")]
    pub contact_name: Option<String>,
    /// The complainant's phone number.
    #[arg(long, conflicts_with = "anonymous")]
    pub contact_phone: Option<String>,
    /// The complainant's e-mail address.
    #[arg(long, conflicts_with = "anonymous")]
    pub contact_email: Option<String>,
    /// The company on whose behalf, if any: organisationsnummer.
    #[arg(long)]
    pub org_nr: Option<String>,
    /// The company's name.
    #[arg(long)]
    pub company_name: Option<String>,
    /// The complaint holds details under secrecy (OSL): a public copy must be masked.
    #[arg(long)]
    pub secrecy: bool,
    /// Idempotency key; a retry with the same key returns the first complaint. Default: a new
    /// UUIDv7.
    #[arg(long, alias = "key")]
    pub idempotency_key: Option<String>,
}

/// What a complaint is about: at most one of these; none means nothing in particular.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "about_what", multiple = false)]
pub struct ComplaintAboutArgs {
    /// A case, by id or reference (NKP-2026-000123).
    #[arg(long)]
    pub about_case: Option<String>,
    /// A unit of the municipality, by unit id.
    #[arg(long)]
    pub about_unit: Option<String>,
    /// An officer, by officer id.
    #[arg(long)]
    pub about_officer: Option<String>,
}

/// `lots complaint list`
#[derive(Debug, Clone, Args)]
pub struct ListComplaintsArgs {
    /// Only complaints in this state.
    #[arg(long, value_enum)]
    pub status: Option<ComplaintStatusArg>,
    /// Only complaints of this category.
    #[arg(long, value_enum)]
    pub category: Option<ComplaintCategoryArg>,
    /// Only complaints handled by this officer.
    #[arg(long)]
    pub handler: Option<String>,
    /// Only complaints about this case (id or reference).
    #[arg(long)]
    pub about_case: Option<String>,
    /// Most complaints to show.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

/// `lots visit …`
#[derive(Debug, Subcommand)]
pub enum VisitCommand {
    /// Register a company visit, with its follow-ups.
    Register(RegisterVisitArgs),
    /// List visits, following pages up to --limit.
    List(ListVisitsArgs),
    /// Show one visit with its follow-ups.
    Show {
        /// Visit id or reference (NKP-B-2026-000012).
        visit: String,
    },
    /// Add or complete a visit's follow-ups.
    #[command(subcommand, name = "follow-up")]
    FollowUp(FollowUpCommand),
    /// Lotsande besök of a year against the yearly target, and the state of the follow-ups.
    Progress {
        /// The year; default: the current one.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=9999))]
        year: Option<i32>,
    },
}

/// `lots visit follow-up …`
#[derive(Debug, Subcommand)]
pub enum FollowUpCommand {
    /// Add a follow-up to a visit.
    Add {
        /// Visit id or reference.
        visit: String,
        /// The officer who does it.
        #[arg(long)]
        owner: String,
        /// Due date, YYYY-MM-DD (today or later).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        due: NaiveDate,
        /// What must be done.
        #[arg(long)]
        what: String,
    },
    /// Mark a follow-up done.
    Done {
        /// Visit id or reference.
        visit: String,
        /// The follow-up's number within the visit (see `lots visit show`).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        number: u32,
        /// What was done.
        #[arg(long)]
        note: String,
    },
}

/// `lots visit register`
#[derive(Debug, Clone, Args)]
pub struct RegisterVisitArgs {
    /// Organisationsnummer, or a sole trader's personnummer.
    #[arg(long)]
    pub org_nr: String,
    /// The company's name.
    #[arg(long)]
    pub company_name: String,
    /// The day of the visit, YYYY-MM-DD (not in the future).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub date: NaiveDate,
    /// Lotsande besök count toward the yearly target.
    #[arg(long, value_enum)]
    pub kind: VisitKindArg,
    /// An officer of the municipality who took part; repeat for several (at least one).
    #[arg(long = "participant", value_name = "OFFICER", required = true)]
    pub participants: Vec<String>,
    /// Someone from the company, as "Name:Role"; repeat for several.
    #[arg(long = "company-participant", value_name = "NAME:ROLE", value_parser = parse_participant)]
    pub company_participants: Vec<CompanyParticipant>,
    /// A topic key from the municipality's list; repeat for several.
    #[arg(long = "topic", value_name = "KEY")]
    pub topics: Vec<String>,
    /// Notes from the visit.
    #[arg(long, default_value = "")]
    pub notes: String,
    /// A follow-up, as "OWNER:YYYY-MM-DD:what to do"; repeat for several.
    #[arg(long = "follow-up", value_name = "OWNER:YYYY-MM-DD:WHAT", value_parser = parse_follow_up)]
    pub follow_ups: Vec<FollowUpSpec>,
    /// The company's story, in its own words.
    #[arg(long)]
    pub story: Option<String>,
    /// The company has agreed that the municipality may publish the story.
    #[arg(long, requires = "story")]
    pub story_consent: bool,
    /// Idempotency key; a retry with the same key returns the first visit. Default: a new UUIDv7.
    #[arg(long, alias = "key")]
    pub idempotency_key: Option<String>,
}

/// `lots visit list`
#[derive(Debug, Clone, Args)]
pub struct ListVisitsArgs {
    /// Only visits of this year.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=9999))]
    pub year: Option<i32>,
    /// Only visits of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<VisitKindArg>,
    /// Only visits with an open follow-up owned by this officer.
    #[arg(long)]
    pub follow_up_owner: Option<String>,
    /// Most visits to show.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

/// `lots tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// The officer's open tasks (offered and accepted).
    List {
        #[command(flatten)]
        officer: OfficerArg,
        /// Show every task, also declined, completed and cancelled ones.
        #[arg(long)]
        all: bool,
    },
    /// The open tasks, then every change as it happens, one line each, until Ctrl-C.
    Watch {
        #[command(flatten)]
        officer: OfficerArg,
        /// Resume after this cursor (printed with each update) instead of a fresh snapshot.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Accept a seat at a dukat bord.
    Accept {
        /// Task id.
        task: String,
    },
    /// Decline a seat; it is offered to another officer.
    Decline {
        /// Task id.
        task: String,
        /// Why, told to the other officers.
        #[arg(long)]
        reason: String,
    },
    /// Mark a task done.
    Complete {
        /// Task id.
        task: String,
        /// A note on what was done.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Whose tasks: the caller's own, or (for the unit's enhetschef) another officer's.
#[derive(Debug, Clone, Args)]
pub struct OfficerArg {
    /// Officer id, e.g. erik.sandberg; default: the logged-in officer.
    #[arg(long, env = "LOTS_OFFICER")]
    pub officer: Option<String>,
}

/// `lots meeting …`
#[derive(Debug, Subcommand)]
pub enum MeetingCommand {
    /// Show the dukat bord of a case (or a meeting by id).
    Show {
        /// Case id, case reference or meeting id.
        target: String,
        /// Print only the iCalendar invite (RFC 5545).
        #[arg(long)]
        ics: bool,
    },
}

/// `lots alerts …`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts that have fired.
    List {
        #[command(flatten)]
        filter: AlertFilter,
        /// Only open alerts (the commitment is not met yet).
        #[arg(long)]
        open: bool,
        /// Only alerts about this case (id or reference).
        #[arg(long)]
        case: Option<String>,
        /// Most alerts to show (1–1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Open alerts, then new ones as they fire, until Ctrl-C.
    Watch {
        #[command(flatten)]
        filter: AlertFilter,
    },
}

/// Which alerts.
#[derive(Debug, Clone, Args)]
pub struct AlertFilter {
    /// Only this unit; repeat for several.
    #[arg(long = "unit")]
    pub units: Vec<String>,
    /// Lowest severity to show.
    #[arg(long, value_enum)]
    pub min_severity: Option<SeverityArg>,
}

/// `lots dev`
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// NATS with JetStream; when nothing answers there, a nats-server is started.
    #[arg(long, env = "LOTS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// PostgreSQL; when nothing answers there, a cluster is started under <state-dir>/pg.
    #[arg(
        long,
        env = "LOTS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/lots",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Municipality configuration: one TOML file, or a folder of them.
    #[arg(long, env = "LOTS_CONFIG", default_value = "deploy/config")]
    pub config: PathBuf,
    /// Prefix for every subject and the stream name.
    #[arg(long, env = "LOTS_SUBJECT_PREFIX", default_value = "")]
    pub subject_prefix: String,
    /// Where started servers keep their data and logs.
    #[arg(long, default_value = ".lots")]
    pub state_dir: PathBuf,
    /// Address the services listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Intake's gRPC port.
    #[arg(long, default_value_t = 50051)]
    pub intake_port: u16,
    /// Routing's gRPC port.
    #[arg(long, default_value_t = 50052)]
    pub routing_port: u16,
    /// The sla service's gRPC port.
    #[arg(long, default_value_t = 50053)]
    pub sla_port: u16,
    /// lots-insight's gRPC port.
    #[arg(long, default_value_t = 50054)]
    pub insight_port: u16,
    /// Play a short scenario with time sped up (in a database and stream of its own, reset each time).
    #[arg(long)]
    pub demo: bool,
    /// With --demo: the municipality (kommunkod) the scenario plays in.
    #[arg(long, default_value = "0581")]
    pub tenant: String,
    /// Port of the local OpenID provider (one issuer per municipality, `http://127.0.0.1:<port>/<kommunkod>`).
    #[arg(long, default_value_t = 8088)]
    pub oidc_port: u16,
    /// With --demo: how many times faster than real time the clock runs (600: a working hour in 6 s).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub speed: u32,
}

/// `--channel`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    Phone,
    Email,
    #[value(alias = "e_service")]
    EService,
    Visit,
    #[value(alias = "company_visit")]
    CompanyVisit,
}

impl From<ChannelArg> for pb::Channel {
    fn from(c: ChannelArg) -> Self {
        match c {
            ChannelArg::Phone => pb::Channel::Phone,
            ChannelArg::Email => pb::Channel::Email,
            ChannelArg::EService => pb::Channel::EService,
            ChannelArg::Visit => pb::Channel::Visit,
            ChannelArg::CompanyVisit => pb::Channel::CompanyVisit,
        }
    }
}

/// `--outcome`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    Granted,
    #[value(alias = "partly_granted")]
    PartlyGranted,
    Denied,
    #[value(alias = "advice_given")]
    AdviceGiven,
    Referred,
}

impl From<OutcomeArg> for pb::Outcome {
    fn from(o: OutcomeArg) -> Self {
        match o {
            OutcomeArg::Granted => pb::Outcome::Granted,
            OutcomeArg::PartlyGranted => pb::Outcome::PartlyGranted,
            OutcomeArg::Denied => pb::Outcome::Denied,
            OutcomeArg::AdviceGiven => pb::Outcome::AdviceGiven,
            OutcomeArg::Referred => pb::Outcome::Referred,
        }
    }
}

/// `--status` of `lots case list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Registered,
    Routed,
    #[value(alias = "meeting_booked")]
    MeetingBooked,
    #[value(alias = "in_progress")]
    InProgress,
    Decided,
    Closed,
    #[value(alias = "waiting_for_company")]
    WaitingForCompany,
    Withdrawn,
    Unroutable,
}

impl From<StatusArg> for pb::CaseStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Registered => pb::CaseStatus::Registered,
            StatusArg::Routed => pb::CaseStatus::Routed,
            StatusArg::MeetingBooked => pb::CaseStatus::MeetingBooked,
            StatusArg::InProgress => pb::CaseStatus::InProgress,
            StatusArg::Decided => pb::CaseStatus::Decided,
            StatusArg::Closed => pb::CaseStatus::Closed,
            StatusArg::WaitingForCompany => pb::CaseStatus::WaitingForCompany,
            StatusArg::Withdrawn => pb::CaseStatus::Withdrawn,
            StatusArg::Unroutable => pb::CaseStatus::Unroutable,
        }
    }
}

/// `--category` of a complaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ComplaintCategoryArg {
    #[value(alias = "bemötande")]
    Bemotande,
    Information,
    #[value(alias = "tillgänglighet")]
    Tillganglighet,
    Kompetens,
    #[value(alias = "rättssäkerhet")]
    Rattssakerhet,
    #[value(alias = "handläggningstid")]
    Handlaggningstid,
    #[value(alias = "övrigt")]
    Ovrigt,
}

impl From<ComplaintCategoryArg> for pb::ComplaintCategory {
    fn from(c: ComplaintCategoryArg) -> Self {
        match c {
            ComplaintCategoryArg::Bemotande => pb::ComplaintCategory::Bemotande,
            ComplaintCategoryArg::Information => pb::ComplaintCategory::Information,
            ComplaintCategoryArg::Tillganglighet => pb::ComplaintCategory::Tillganglighet,
            ComplaintCategoryArg::Kompetens => pb::ComplaintCategory::Kompetens,
            ComplaintCategoryArg::Rattssakerhet => pb::ComplaintCategory::Rattssakerhet,
            ComplaintCategoryArg::Handlaggningstid => pb::ComplaintCategory::Handlaggningstid,
            ComplaintCategoryArg::Ovrigt => pb::ComplaintCategory::Ovrigt,
        }
    }
}

/// `--status` of `lots complaint list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ComplaintStatusArg {
    Registered,
    Acknowledged,
    Answered,
    Closed,
}

impl From<ComplaintStatusArg> for pb::ComplaintStatus {
    fn from(s: ComplaintStatusArg) -> Self {
        match s {
            ComplaintStatusArg::Registered => pb::ComplaintStatus::Registered,
            ComplaintStatusArg::Acknowledged => pb::ComplaintStatus::Acknowledged,
            ComplaintStatusArg::Answered => pb::ComplaintStatus::Answered,
            ComplaintStatusArg::Closed => pb::ComplaintStatus::Closed,
        }
    }
}

/// `--kind` of a company visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VisitKindArg {
    /// Lotsande besök: counts toward the yearly target.
    Lotsande,
    Other,
}

impl From<VisitKindArg> for pb::VisitKind {
    fn from(k: VisitKindArg) -> Self {
        match k {
            VisitKindArg::Lotsande => pb::VisitKind::Lotsande,
            VisitKindArg::Other => pb::VisitKind::Other,
        }
    }
}

/// `--outcome` of `lots report cases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuaranteeOutcomeArg {
    Kept,
    Breached,
}

impl GuaranteeOutcomeArg {
    /// The word the API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            GuaranteeOutcomeArg::Kept => "kept",
            GuaranteeOutcomeArg::Breached => "breached",
        }
    }
}

/// `--min-severity`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Info,
    Warning,
    Breach,
    Escalation,
}

impl From<SeverityArg> for pb::Severity {
    fn from(s: SeverityArg) -> Self {
        match s {
            SeverityArg::Info => pb::Severity::Info,
            SeverityArg::Warning => pb::Severity::Warning,
            SeverityArg::Breach => pb::Severity::Breach,
            SeverityArg::Escalation => pb::Severity::Escalation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lots").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn register_takes_every_field_and_defaults_the_key() {
        let cli = parse(&[
            "case",
            "register",
            "--org-nr",
            "556036-0793",
            "--company",
            "Knäppingsborgs Krog AB",
            "--contact-name",
            "Sara Holm",
            "--phone",
            "070-123 45 67",
            "--email",
            "sara@example.se",
            "--type",
            "restaurang_start",
            "--channel",
            "phone",
        ])
        .unwrap();
        let Command::Case(CaseCommand::Register(r)) = cli.command else { panic!("not a register command") };
        assert_eq!(r.org_nr, "556036-0793");
        assert_eq!(r.company, "Knäppingsborgs Krog AB");
        assert_eq!(r.case_type, "restaurang_start");
        assert_eq!(r.channel, ChannelArg::Phone);
        assert_eq!(r.key, None);
        assert_eq!(r.description, "");
    }

    #[test]
    fn channels_accept_the_api_spelling_too() {
        for spelling in ["e-service", "e_service"] {
            let cli = parse(&[
                "case",
                "register",
                "--org-nr",
                "1",
                "--company",
                "c",
                "--contact-name",
                "n",
                "--phone",
                "p",
                "--email",
                "e",
                "--type",
                "t",
                "--channel",
                spelling,
            ])
            .unwrap();
            let Command::Case(CaseCommand::Register(r)) = cli.command else { panic!("not a register command") };
            assert_eq!(pb::Channel::from(r.channel), pb::Channel::EService);
        }
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&["case", "show", "NKP-2026-000001", "--json", "--intake", "http://10.0.0.1:1"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.intake, "http://10.0.0.1:1");
    }

    #[test]
    fn a_missing_required_flag_is_a_usage_error_with_exit_code_2() {
        let err = parse(&["case", "close", "NKP-2026-000001", "--outcome", "granted"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = parse(&["case", "close", "x", "--outcome", "maybe", "--decision", "d"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn list_limit_must_be_positive() {
        assert!(parse(&["case", "list", "--limit", "0"]).is_err());
        let cli = parse(&["case", "list", "--status", "waiting_for_company"]).unwrap();
        let Command::Case(CaseCommand::List(l)) = cli.command else { panic!("not a list command") };
        assert_eq!(l.status, Some(StatusArg::WaitingForCompany));
        assert_eq!(l.limit, 50);
    }

    #[test]
    fn the_officer_comes_from_the_token_and_a_manager_may_name_another() {
        assert!(parse(&["tasks", "decline", "t1", "--officer", "erik", "--reason", "semester"]).is_err());
        let cli = parse(&["tasks", "decline", "t1", "--reason", "semester"]).unwrap();
        let Command::Tasks(TasksCommand::Decline { task, reason }) = cli.command else {
            panic!("not a decline command")
        };
        assert_eq!((task.as_str(), reason.as_str()), ("t1", "semester"));
        let cli = parse(&["tasks", "list", "--officer", "erik.sandberg"]).unwrap();
        let Command::Tasks(TasksCommand::List { officer, .. }) = cli.command else { panic!("not a list command") };
        assert_eq!(officer.officer.as_deref(), Some("erik.sandberg"));
    }

    #[test]
    fn complaint_register_takes_every_field_and_defaults_the_key() {
        let cli = parse(&[
            "complaint",
            "register",
            "--category",
            "bemötande",
            "--channel",
            "e-service",
            "--about-case",
            "NKP-2026-000042",
            "--description",
            "Otrevligt bemött",
            "--contact-name",
            "Sara Holm",
            "--contact-phone",
            "070-123 45 67",
            "--org-nr",
            "556036-0793",
            "--company-name",
            "Knäppingsborgs Krog AB",
            "--secrecy",
        ])
        .unwrap();
        let Command::Complaint(ComplaintCommand::Register(r)) = cli.command else { panic!("not a register command") };
        assert_eq!(r.category, ComplaintCategoryArg::Bemotande);
        assert_eq!(pb::Channel::from(r.channel), pb::Channel::EService);
        assert_eq!(r.about.about_case.as_deref(), Some("NKP-2026-000042"));
        assert_eq!(r.contact_email, None);
        assert!(r.secrecy && !r.anonymous);
        assert_eq!(r.idempotency_key, None);
    }

    #[test]
    fn a_complaint_is_about_one_thing_at_most_and_anonymous_takes_no_contact() {
        let base = ["complaint", "register", "--category", "ovrigt", "--channel", "phone", "--description", "d"];
        let with = |extra: &[&str]| parse(&[&base[..], extra].concat());
        assert!(with(&[]).is_ok());
        assert_eq!(with(&["--about-unit", "u", "--about-officer", "o"]).unwrap_err().exit_code(), 2);
        assert!(with(&["--about-case", "c", "--about-unit", "u"]).is_err());
        assert!(with(&["--anonymous", "--contact-name", "n"]).is_err());
        let cli = with(&["--anonymous", "--idempotency-key", "k1"]).unwrap();
        let Command::Complaint(ComplaintCommand::Register(r)) = cli.command else { panic!("not a register command") };
        assert!(r.anonymous);
        assert_eq!(r.idempotency_key.as_deref(), Some("k1"));
    }

    #[test]
    fn complaint_lifecycle_commands_parse() {
        let cli = parse(&["complaint", "list", "--status", "answered", "--category", "handlaggningstid"]).unwrap();
        let Command::Complaint(ComplaintCommand::List(l)) = cli.command else { panic!("not a list command") };
        assert_eq!(l.status, Some(ComplaintStatusArg::Answered));
        assert_eq!(l.category, Some(ComplaintCategoryArg::Handlaggningstid));
        assert_eq!(l.limit, 50);
        let cli = parse(&["complaint", "answer", "NKP-K-2026-000007", "--answer", "a", "--action-taken", "t"]).unwrap();
        let Command::Complaint(ComplaintCommand::Answer { complaint, answer, action_taken }) = cli.command else {
            panic!("not an answer command")
        };
        assert_eq!((complaint.as_str(), answer.as_str(), action_taken.as_str()), ("NKP-K-2026-000007", "a", "t"));
        assert!(parse(&["complaint", "reassign", "x", "--to", "anna.berg"]).is_err());
        assert!(parse(&["complaint", "acknowledge", "x"]).is_ok());
        assert!(parse(&["complaint", "close", "x"]).is_ok());
    }

    #[test]
    fn visit_register_parses_repeated_participants_and_follow_ups() {
        let cli = parse(&[
            "visit",
            "register",
            "--org-nr",
            "556036-0793",
            "--company-name",
            "Knäppingsborgs Krog AB",
            "--date",
            "2026-11-20",
            "--kind",
            "lotsande",
            "--participant",
            "erik.sandberg",
            "--participant",
            "anna.berg",
            "--company-participant",
            "Sara Holm:VD",
            "--topic",
            "serveringstillstand",
            "--follow-up",
            "erik.sandberg:2026-12-01:skicka checklistan",
            "--story",
            "Allt gick fort",
            "--story-consent",
        ])
        .unwrap();
        let Command::Visit(VisitCommand::Register(r)) = cli.command else { panic!("not a register command") };
        assert_eq!(r.date.to_string(), "2026-11-20");
        assert_eq!(r.kind, VisitKindArg::Lotsande);
        assert_eq!(r.participants, ["erik.sandberg", "anna.berg"]);
        assert_eq!(r.company_participants[0].role, "VD");
        assert_eq!(r.follow_ups[0].owner, "erik.sandberg");
        assert_eq!(r.follow_ups[0].due.to_string(), "2026-12-01");
        assert!(r.story_consent);
        assert_eq!(r.notes, "");
    }

    #[test]
    fn visit_register_errors_name_the_flag() {
        let base =
            ["visit", "register", "--org-nr", "1", "--company-name", "c", "--date", "2026-11-20", "--kind", "other"];
        let with = |extra: &[&str]| parse(&[&base[..], extra].concat());
        assert!(with(&[]).is_err(), "at least one --participant");
        let err = with(&["--participant", "p", "--follow-up", "erik:2026-12-01"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--follow-up"), "{err}");
        let err = with(&["--participant", "p", "--company-participant", "Sara Holm"]).unwrap_err();
        assert!(err.to_string().contains("--company-participant"), "{err}");
        assert!(with(&["--participant", "p", "--story-consent"]).is_err(), "consent needs a story");
        let err = parse(&["visit", "list", "--year", "20x6"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn follow_up_and_progress_commands_parse() {
        let cli = parse(&[
            "visit",
            "follow-up",
            "add",
            "NKP-B-2026-000012",
            "--owner",
            "anna.berg",
            "--due",
            "2026-12-01",
            "--what",
            "boka tillsyn",
        ])
        .unwrap();
        let Command::Visit(VisitCommand::FollowUp(FollowUpCommand::Add { visit, due, .. })) = cli.command else {
            panic!("not a follow-up add command")
        };
        assert_eq!((visit.as_str(), due.to_string().as_str()), ("NKP-B-2026-000012", "2026-12-01"));
        assert!(parse(&["visit", "follow-up", "add", "v", "--owner", "o", "--due", "1/12", "--what", "w"]).is_err());
        let cli = parse(&["visit", "follow-up", "done", "v", "2", "--note", "klart"]).unwrap();
        let Command::Visit(VisitCommand::FollowUp(FollowUpCommand::Done { number, .. })) = cli.command else {
            panic!("not a follow-up done command")
        };
        assert_eq!(number, 2);
        assert!(parse(&["visit", "follow-up", "done", "v", "0", "--note", "n"]).is_err());
        let cli = parse(&["visit", "progress", "--year", "2026"]).unwrap();
        let Command::Visit(VisitCommand::Progress { year }) = cli.command else { panic!("not progress") };
        assert_eq!(year, Some(2026));
        let cli = parse(&["visit", "list", "--kind", "other", "--follow-up-owner", "erik"]).unwrap();
        let Command::Visit(VisitCommand::List(l)) = cli.command else { panic!("not a list command") };
        assert_eq!((l.kind, l.follow_up_owner.as_deref(), l.year), (Some(VisitKindArg::Other), Some("erik"), None));
    }

    #[test]
    fn login_defaults_to_the_local_dev_issuer() {
        let cli = parse(&["login"]).unwrap();
        let Command::Login(login) = cli.command else { panic!("not login") };
        assert_eq!(login.issuer, "http://127.0.0.1:8088/0581");
        assert!(login.client_id.is_none() && !login.print);
    }

    #[test]
    fn alert_filters_repeat_units() {
        let cli = parse(&[
            "alerts",
            "list",
            "--unit",
            "bygglov",
            "--unit",
            "tillstand",
            "--min-severity",
            "breach",
            "--open",
        ])
        .unwrap();
        let Command::Alerts(AlertsCommand::List { filter, open, .. }) = cli.command else {
            panic!("not an alerts list")
        };
        assert_eq!(filter.units, ["bygglov", "tillstand"]);
        assert_eq!(filter.min_severity, Some(SeverityArg::Breach));
        assert!(open);
    }

    #[test]
    fn report_guarantee_takes_months_and_output_files() {
        let cli = parse(&["report", "guarantee", "--from", "2026-01", "--to", "2026-12", "--svg", "out.svg"]).unwrap();
        assert_eq!(cli.global.insight, "http://127.0.0.1:50054");
        let Command::Report(ReportCommand::Guarantee(g)) = cli.command else { panic!("not report guarantee") };
        assert_eq!((g.from.as_str(), g.to.as_str()), ("2026-01", "2026-12"));
        assert_eq!(g.svg, Some(PathBuf::from("out.svg")));
        assert!(g.csv.is_none() && g.unit.is_none() && g.case_type.is_none());
        let err = parse(&["report", "guarantee", "--from", "2026-1", "--to", "2026-12"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--from"), "{err}");
        assert!(parse(&["report", "guarantee", "--from", "2026-01"]).is_err(), "--to is required");
    }

    #[test]
    fn the_other_report_commands_parse() {
        let cli = parse(&[
            "report",
            "cases",
            "--month",
            "2026-03",
            "--unit",
            "bygglov",
            "--case-type",
            "bygglov_nybyggnad",
            "--commitment",
            "first_contact",
            "--outcome",
            "breached",
        ])
        .unwrap();
        let Command::Report(ReportCommand::Cases(c)) = cli.command else { panic!("not report cases") };
        assert_eq!(c.outcome.map(GuaranteeOutcomeArg::as_str), Some("breached"));
        let cli =
            parse(&["report", "insikt", "--from", "2026-01-01", "--to", "2026-06-30", "--out", "insikt.csv"]).unwrap();
        let Command::Report(ReportCommand::Insikt { from, to, out }) = cli.command else { panic!("not insikt") };
        assert_eq!((from.to_string(), to.to_string()), ("2026-01-01".to_owned(), "2026-06-30".to_owned()));
        assert_eq!(out, PathBuf::from("insikt.csv"));
        assert!(parse(&["report", "insikt", "--from", "2026-01", "--to", "2026-06-30", "--out", "f"]).is_err());
        let cli = parse(&["report", "nki", "import", "nki.csv"]).unwrap();
        let Command::Report(ReportCommand::Nki(NkiCommand::Import { file })) = cli.command else { panic!("not nki") };
        assert_eq!(file, PathBuf::from("nki.csv"));
        let cli = parse(&["status", "NKP-2026-000123", "--insight", "http://10.0.0.1:1"]).unwrap();
        let Command::Status { case } = cli.command else { panic!("not status") };
        assert_eq!((case.as_str(), cli.global.insight.as_str()), ("NKP-2026-000123", "http://10.0.0.1:1"));
    }

    #[test]
    fn dev_has_defaults_that_work_on_one_machine() {
        let cli = parse(&["dev", "--demo"]).unwrap();
        let Command::Dev(dev) = cli.command else { panic!("not dev") };
        assert!(dev.demo);
        assert_eq!(dev.speed, 600);
        assert_eq!((dev.intake_port, dev.routing_port, dev.sla_port), (50051, 50052, 50053));
        assert_eq!(dev.insight_port, 50054);
        assert_eq!(dev.state_dir, PathBuf::from(".lots"));
    }
}
