//! `lots tasks …`: a handläggare's seats at dukat bord meetings (TaskService).

use anyhow::Context as _;
use futures::StreamExt as _;
use lots_proto::v1 as pb;
use serde::Serialize;

use crate::args::{Global, TasksCommand};
use crate::client;
use crate::output::{Out, Table, enum_word, local, rfc3339};

/// Runs one `lots tasks` command.
pub async fn run(global: &Global, command: TasksCommand) -> anyhow::Result<()> {
    let out = Out { json: global.json };
    let mut tasks = client::tasks(global).await?;
    match command {
        TasksCommand::List { officer, all } => {
            let statuses = if all {
                vec![
                    pb::TaskStatus::Offered as i32,
                    pb::TaskStatus::Accepted as i32,
                    pb::TaskStatus::Declined as i32,
                    pb::TaskStatus::Completed as i32,
                    pb::TaskStatus::Cancelled as i32,
                ]
            } else {
                Vec::new()
            };
            // Every page, in meeting order.
            let mut list = pb::ListTasksResponse::default();
            loop {
                let req = pb::ListTasksRequest {
                    statuses: statuses.clone(),
                    officer_id: officer.officer.clone().unwrap_or_default(),
                    page_size: 500,
                    page_token: list.next_page_token.clone(),
                };
                let page = tasks.list_tasks(req).await.context("list tasks")?.into_inner();
                list.tasks.extend(page.tasks);
                list.next_page_token = page.next_page_token;
                if list.next_page_token.is_empty() {
                    break;
                }
            }
            if out.json {
                for t in &list.tasks {
                    out.json_line(&TaskView::new(t))?;
                }
            } else if list.tasks.is_empty() {
                out.text(&format!(
                    "{} no open tasks\n",
                    officer.officer.map_or("You have".into(), |o| format!("{o} has"))
                ));
            } else {
                out.text(&task_table(&list.tasks));
            }
            Ok(())
        }
        TasksCommand::Watch { officer, cursor } => {
            let req = pb::WatchTasksRequest {
                cursor: cursor.unwrap_or_default(),
                officer_id: officer.officer.unwrap_or_default(),
            };
            let mut stream = tasks.watch_tasks(req).await.context("watch tasks")?.into_inner();
            loop {
                let update = tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    next = stream.next() => next,
                };
                let Some(update) = update else {
                    anyhow::bail!("routing ended the task stream");
                };
                let update = update.context("watch tasks")?;
                if out.json {
                    out.json_line(&UpdateView::new(&update))?;
                } else {
                    out.text(&update_line(&update));
                }
            }
        }
        TasksCommand::Accept { task } => {
            let req = pb::AcceptTaskRequest { task_id: task, ..Default::default() };
            let task = tasks.accept_task(req).await.context("accept the task")?;
            print_task(out, "accepted", &task.into_inner())
        }
        TasksCommand::Decline { task, reason } => {
            let req = pb::DeclineTaskRequest { task_id: task, reason, ..Default::default() };
            let task = tasks.decline_task(req).await.context("decline the task")?;
            print_task(out, "declined", &task.into_inner())
        }
        TasksCommand::Complete { task, note } => {
            let req = pb::CompleteTaskRequest { task_id: task, note, ..Default::default() };
            let task = tasks.complete_task(req).await.context("complete the task")?;
            print_task(out, "completed", &task.into_inner())
        }
    }
}

fn print_task(out: Out, verb: &str, task: &pb::Task) -> anyhow::Result<()> {
    if out.json {
        return out.json_line(&TaskView::new(task));
    }
    out.text(&format!("{verb}: {}\n", task_summary(task)));
    Ok(())
}

/// The task status as a word, e.g. "offered".
pub fn status_word(status: i32) -> String {
    pb::TaskStatus::try_from(status)
        .map(|s| enum_word(s.as_str_name(), "TASK_STATUS_"))
        .unwrap_or_else(|_| format!("unknown({status})"))
}

/// What kind of task update, e.g. "snapshot" or "moved".
pub fn kind_word(kind: i32) -> String {
    pb::task_update::Kind::try_from(kind)
        .map(|k| enum_word(k.as_str_name(), "KIND_"))
        .unwrap_or_else(|_| format!("unknown({kind})"))
}

/// A task in one line: case, company, seat, meeting time and its id.
pub fn task_summary(t: &pb::Task) -> String {
    let mut line = format!(
        "{} {} \"{}\" seat {} ({}), meeting {}",
        t.case_reference,
        t.case_type,
        t.company_name,
        t.competence,
        status_word(t.status),
        local(t.meeting_starts_at.as_ref()),
    );
    if !t.reason.is_empty() {
        line.push_str(&format!(", reason: {}", t.reason));
    }
    line.push_str(&format!(" [task {}]", t.id));
    line
}

/// One line per update of `lots tasks watch`.
pub fn update_line(u: &pb::TaskUpdate) -> String {
    match &u.task {
        None => format!("-- live (cursor {}) --\n", u.cursor),
        Some(t) => format!("{:<9} {}  (cursor {})\n", kind_word(u.kind), task_summary(t), u.cursor),
    }
}

/// Tasks as a table.
pub fn task_table(tasks: &[pb::Task]) -> String {
    let mut table = Table::new(&["TASK", "STATUS", "CASE", "TYPE", "COMPANY", "SEAT", "MEETING"]);
    for t in tasks {
        table.row(vec![
            t.id.clone(),
            status_word(t.status),
            t.case_reference.clone(),
            t.case_type.clone(),
            t.company_name.clone(),
            t.competence.clone(),
            local(t.meeting_starts_at.as_ref()),
        ]);
    }
    table.render()
}

/// A task for `--json`.
#[derive(Debug, Serialize)]
pub struct TaskView {
    pub id: String,
    pub status: String,
    pub officer_id: String,
    pub tenant: String,
    pub case_id: String,
    pub case_reference: String,
    pub case_type: String,
    pub company_name: String,
    pub competence: String,
    pub meeting_id: String,
    pub meeting_starts_at: Option<String>,
    pub meeting_ends_at: Option<String>,
    pub reason: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl TaskView {
    /// The JSON form of a task.
    pub fn new(t: &pb::Task) -> TaskView {
        TaskView {
            id: t.id.clone(),
            status: status_word(t.status),
            officer_id: t.officer_id.clone(),
            tenant: t.tenant.clone(),
            case_id: t.case_id.clone(),
            case_reference: t.case_reference.clone(),
            case_type: t.case_type.clone(),
            company_name: t.company_name.clone(),
            competence: t.competence.clone(),
            meeting_id: t.meeting_id.clone(),
            meeting_starts_at: rfc3339(t.meeting_starts_at.as_ref()),
            meeting_ends_at: rfc3339(t.meeting_ends_at.as_ref()),
            reason: Some(t.reason.clone()).filter(|r| !r.is_empty()),
            created_at: rfc3339(t.created_at.as_ref()),
            updated_at: rfc3339(t.updated_at.as_ref()),
        }
    }
}

/// A task update for `--json`.
#[derive(Debug, Serialize)]
pub struct UpdateView {
    pub kind: String,
    pub cursor: String,
    pub task: Option<TaskView>,
}

impl UpdateView {
    /// The JSON form of an update.
    pub fn new(u: &pb::TaskUpdate) -> UpdateView {
        UpdateView { kind: kind_word(u.kind), cursor: u.cursor.clone(), task: u.task.as_ref().map(TaskView::new) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> pb::Task {
        pb::Task {
            id: "t-1".into(),
            case_reference: "NKP-2026-000042".into(),
            case_type: "restaurang_start".into(),
            company_name: "Knäppingsborgs Krog AB".into(),
            competence: "livsmedel".into(),
            status: pb::TaskStatus::Offered as i32,
            meeting_starts_at: Some(prost_types::Timestamp { seconds: 1_795_500_000, nanos: 0 }),
            ..Default::default()
        }
    }

    #[test]
    fn watch_lines_name_the_kind_and_the_cursor() {
        let update =
            pb::TaskUpdate { kind: pb::task_update::Kind::Offered as i32, task: Some(task()), cursor: "7".into() };
        assert_eq!(
            update_line(&update),
            "offered   NKP-2026-000042 restaurang_start \"Knäppingsborgs Krog AB\" seat livsmedel \
             (offered), meeting 2026-11-24 07:00 [task t-1]  (cursor 7)\n"
        );
        let live = pb::TaskUpdate { kind: pb::task_update::Kind::Live as i32, task: None, cursor: "7".into() };
        assert_eq!(update_line(&live), "-- live (cursor 7) --\n");
    }

    #[test]
    fn json_updates_carry_kind_and_task() {
        let update =
            pb::TaskUpdate { kind: pb::task_update::Kind::Snapshot as i32, task: Some(task()), cursor: "3".into() };
        let v = serde_json::to_value(UpdateView::new(&update)).unwrap();
        assert_eq!(v["kind"], "snapshot");
        assert_eq!(v["task"]["status"], "offered");
        assert_eq!(v["task"]["meeting_starts_at"], "2026-11-24T06:00:00Z");
    }

    #[test]
    fn the_table_lists_the_task_id_first() {
        let text = task_table(&[task()]);
        assert!(text.lines().nth(1).unwrap().starts_with("t-1   offered"));
    }
}
