//! The workflow tables on sqlx `Any` (SQLite or PostgreSQL, one query text for both): definitions,
//! runs with their lease, the attempt log and the inbound inbox. Everything a REST API needs is here and
//! needs no running engine; the engine's own writes are fenced by its lease token.

use contract::Owner;
use serde::Deserialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use std::collections::HashMap;
use std::sync::Arc;

use crate::definition::{Action, Format, WorkflowDefinition};
use crate::error::{FieldError, FlowsError};
use crate::run::*;

pub static MIGRATIONS: db::Migrations =
    db::Migrations { sqlite: sqlx::migrate!("./migrations/sqlite"), postgres: sqlx::migrate!("./migrations/postgres") };

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
/// Outputs and inbound payloads are stored with the run: keep them small.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Event types the product itself emits (`endpoint.disabled`, `message.attempt.exhausted`,
/// `workflow.completed`, `notification.*`, `test.ping`): a workflow step may not emit them, so a
/// receiver can trust them (issue 14).
pub const RESERVED_EVENT_PREFIXES: &[&str] = &["endpoint.", "message.", "notification.", "workflow.", "test."];

/// Whether `event_type` (or a template that starts like one) is a system event type.
pub fn is_reserved_event_type(event_type: &str) -> bool {
    let t = event_type.trim().to_ascii_lowercase();
    RESERVED_EVENT_PREFIXES.iter().any(|p| t.starts_with(p) || t == p.trim_end_matches('.'))
}

/// An inbound webhook source as workflows see it: it belongs to one owner, whose runs alone may wait on
/// it and receive its messages (issue 14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSource {
    pub owner: Owner,
    /// What a run the source starts may do (default: `workflows:write` only).
    pub scopes: Vec<String>,
    /// The owner's workflow (by name) each accepted webhook starts, if any.
    pub workflow: Option<String>,
}

/// Per-owner limits (issue 14), so one user cannot fill the tables or hog the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Runs `running`, `waiting` or `compensating` at once; one more is refused with 429.
    pub max_active_runs_per_owner: u32,
    /// Stored definitions; one more is refused with 422.
    pub max_definitions_per_owner: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_active_runs_per_owner: 100, max_definitions_per_owner: 100 }
    }
}

/// A stored definition with its parsed form.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefinitionRecord {
    pub id: i64,
    pub owner: String,
    pub name: String,
    /// 1 on creation, +1 on every update. Runs record the version they started with.
    pub version: i64,
    pub format: Format,
    pub source: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub definition: WorkflowDefinition,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl DefinitionRecord {
    /// What the definitions list and the editor show.
    pub fn summary(&self) -> contract::workflows::DefinitionSummary {
        contract::workflows::DefinitionSummary {
            id: self.id,
            name: self.name.clone(),
            description: self.definition.description.clone(),
            version: self.version,
            format: self.format.as_str().to_string(),
            source: self.source.clone(),
            steps: self.definition.step_names(),
            input: self.definition.input.clone(),
            updated_at_ms: self.updated_at_ms,
        }
    }
}

/// Which definition a run starts from.
#[derive(Debug, Clone)]
pub enum DefinitionRef {
    Id(i64),
    Name(String),
    /// Not stored (tests, one-off runs): the run keeps it as its snapshot all the same.
    Inline(WorkflowDefinition),
}

/// The body of `POST /api/v1/workflows/{id}/runs`: `{"input": {...}}`, `input` optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartRun {
    /// The workflow's input; its `input` keys must be present.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(default)]
    pub input: Value,
}

impl StartRun {
    /// The run input: an absent or null `input` is the empty object.
    pub fn into_input(self) -> Value {
        if self.input.is_null() {
            serde_json::json!({})
        } else {
            self.input
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub definition: DefinitionRef,
    pub input: Value,
    /// Starting twice with the same key (per owner) returns the first run.
    pub idempotency_key: Option<String>,
    /// Who starts it: its steps may do what this credential may, and no more.
    pub started_by: StartedBy,
}

/// What an inbound webhook did, within the transaction that claimed its id (see [`Store::receive_inbound`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundEffect {
    /// The source's owner; `None`: the source belongs to nobody, so nothing was stored.
    pub owner: Option<Owner>,
    /// The inbox row, when the body carried a correlation.
    pub message: Option<i64>,
    pub resumed_run: Option<RunId>,
    pub started_run: Option<RunId>,
}

/// A run as the engine holds it: the record plus what only the engine needs.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub rec: RunRecord,
    pub definition: WorkflowDefinition,
    pub wait_until_ms: Option<i64>,
    pub waiting_token: Option<String>,
}

/// A change to the attempt log, written in the same transaction as the run.
#[derive(Debug, Clone)]
pub(crate) enum AttemptOp {
    /// Close an attempt left `running` by a worker that died.
    Interrupt,
    Begin {
        step_index: i64,
        step_name: String,
        phase: Phase,
        attempt: i64,
        outcome: AttemptOutcome,
    },
    /// Close the open attempt of the run.
    Finish {
        outcome: AttemptOutcome,
        output: Option<Value>,
        error: Option<(String, String)>,
        next_attempt_at_ms: Option<i64>,
    },
}

/// The columns a run listing reads: all but the definition snapshot (the largest column, which a
/// listing never shows) and the wait bookkeeping. A macro so that [`RUN_COLUMNS`] extends it.
macro_rules! listed_run_columns {
    () => {
        "id, owner, definition_id, workflow, definition_version, idempotency_key, input, status, \
         current_step, attempt, state, cancel_requested, failed_step, error_code, error_message, wake_at_ms, \
         waiting_source, waiting_correlation, started_by, token_id, scopes, created_at_ms, updated_at_ms, finished_at_ms"
    };
}

/// Every column of a run (what the engine works from).
const RUN_COLUMNS: &str = concat!(listed_run_columns!(), ", definition, wait_until_ms, waiting_token");

const LISTED_RUN_COLUMNS: &str = listed_run_columns!();

const ACTIVE_SQL: &str = "('running', 'waiting', 'compensating')";

fn json_col(row: &AnyRow, col: &str) -> Result<Value, FlowsError> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| FlowsError::internal("stored JSON does not parse", format!("{col}: {e}")))
}

fn run_from_row(row: &AnyRow) -> Result<RunRow, FlowsError> {
    let definition: WorkflowDefinition =
        serde_json::from_value(json_col(row, "definition")?).map_err(|e| FlowsError::internal("stored definition snapshot does not parse", e))?;
    Ok(RunRow { rec: record_from_row(row)?, definition, wait_until_ms: row.try_get("wait_until_ms")?, waiting_token: row.try_get("waiting_token")? })
}

/// The run's record from a row with at least [`LISTED_RUN_COLUMNS`].
fn record_from_row(row: &AnyRow) -> Result<RunRecord, FlowsError> {
    let status: String = row.try_get("status")?;
    let state: RunState = serde_json::from_value(json_col(row, "state")?).map_err(|e| FlowsError::internal("stored run state does not parse", e))?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        definition_id: row.try_get("definition_id")?,
        workflow: row.try_get("workflow")?,
        definition_version: row.try_get("definition_version")?,
        status: RunStatus::parse(&status).ok_or_else(|| FlowsError::internal("unknown run status", &status))?,
        input: json_col(row, "input")?,
        current_step: row.try_get("current_step")?,
        attempt: row.try_get("attempt")?,
        steps: state.steps,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        failed_step: row.try_get("failed_step")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        wake_at_ms: row.try_get("wake_at_ms")?,
        waiting_source: row.try_get("waiting_source")?,
        waiting_correlation: row.try_get("waiting_correlation")?,
        idempotency_key: row.try_get("idempotency_key")?,
        started_by: crate::run::started_by_from_columns(row.try_get("started_by")?, row.try_get("token_id")?, &row.try_get::<String, _>("scopes")?),
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
    })
}

/// A stored definition's source, parsed. Stored definitions were valid when written; they are parsed
/// without re-validating so that a stricter validator later never makes an old one unreadable.
///
/// Parses are remembered by source text: the same text always parses to the same definition, and the
/// workflows page lists every definition (the built-in one is the same text for every user) on every
/// view. Bounded by weight: at most 8 MB of source text.
fn parse_stored(format: Format, source: &str) -> Result<WorkflowDefinition, FlowsError> {
    let toml = matches!(format, Format::Toml);
    if let Some(d) = parsed_definitions().get(&SourceRef(toml, source)) {
        return Ok(d);
    }
    let definition: WorkflowDefinition = match format {
        Format::Toml => toml::from_str(source).map_err(|e| FlowsError::internal("stored definition does not parse", e)),
        Format::Json => serde_json::from_str(source).map_err(|e| FlowsError::internal("stored definition does not parse", e)),
    }?;
    parsed_definitions().insert(Source(toml, source.to_string()), definition.clone());
    Ok(definition)
}

/// A remembered definition's text (TOML or not), looked up by [`SourceRef`] so a lookup copies no text.
#[derive(PartialEq, Eq, Hash)]
struct Source(bool, String);

/// Hashes as [`Source`] does (the same fields in the same order).
#[derive(Hash)]
struct SourceRef<'a>(bool, &'a str);

impl quick_cache::Equivalent<Source> for SourceRef<'_> {
    fn equivalent(&self, key: &Source) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

#[derive(Clone)]
struct SourceBytes;

impl quick_cache::Weighter<Source, WorkflowDefinition> for SourceBytes {
    fn weight(&self, key: &Source, _: &WorkflowDefinition) -> u64 {
        key.1.len() as u64 + 1
    }
}

fn parsed_definitions() -> &'static quick_cache::sync::Cache<Source, WorkflowDefinition, SourceBytes> {
    static PARSED: std::sync::OnceLock<quick_cache::sync::Cache<Source, WorkflowDefinition, SourceBytes>> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| quick_cache::sync::Cache::with_weighter(1_000, 8 << 20, SourceBytes))
}

fn definition_from_row(row: &AnyRow) -> Result<DefinitionRecord, FlowsError> {
    let format = Format::parse(&row.try_get::<String, _>("format")?).map_err(|e| FlowsError::internal("stored format", e))?;
    let source: String = row.try_get("source")?;
    let definition = parse_stored(format, &source)?;
    Ok(DefinitionRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        format,
        source,
        definition,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<AttemptRecord, FlowsError> {
    let output: Option<String> = row.try_get("output")?;
    Ok(AttemptRecord {
        id: row.try_get("id")?,
        step_index: row.try_get("step_index")?,
        step_name: row.try_get("step_name")?,
        phase: Phase::parse(&row.try_get::<String, _>("phase")?),
        attempt: row.try_get("attempt")?,
        outcome: AttemptOutcome::parse(&row.try_get::<String, _>("outcome")?),
        started_at_ms: row.try_get("started_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        output: output.and_then(|o| serde_json::from_str(&o).ok()),
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
        worker: row.try_get("worker")?,
    })
}

fn page_bounds(page: &Page) -> Result<(i64, Option<i64>), FlowsError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as i64;
    let cursor = match &page.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| FlowsError::BadRequest("invalid cursor".into()))?),
    };
    Ok((limit, cursor))
}

/// The built-in examples' names as SQL literals: they do not count against the definitions quota (there
/// are few, and they come back on the next write anyway). Names are ours and plain (`[a-z_]`).
fn builtin_names_sql() -> String {
    crate::builtin::all().iter().map(|(name, _)| format!("'{}'", name.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
}

async fn run_by_idempotency_key(conn: &mut AnyConnection, owner: &str, key: &str) -> Result<Option<RunId>, FlowsError> {
    let row = sqlx::query("SELECT id FROM workflow_runs WHERE owner = $1 AND idempotency_key = $2")
        .bind(owner)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("id")?),
        None => None,
    })
}

fn checked_payload(payload: &Value) -> Result<String, FlowsError> {
    let text = to_text(payload);
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(FlowsError::invalid("payload", format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON")));
    }
    Ok(text)
}

async fn insert_message(conn: &mut AnyConnection, owner: &str, source: &str, correlation: &str, text: &str) -> Result<i64, FlowsError> {
    let row =
        sqlx::query("INSERT INTO workflow_inbox (owner, source, correlation, payload, received_at_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(owner)
            .bind(source)
            .bind(correlation)
            .bind(text)
            .bind(now_ms())
            .fetch_one(&mut *conn)
            .await?;
    Ok(row.try_get("id")?)
}

/// Gives inbox message `msg` to the first of `owner`'s runs waiting on (`source`, `correlation`), if
/// one is. Called after the message is stored: together with the engine's order (record the wait, then
/// look in the inbox) one of the two always sees the other.
async fn hand_over(conn: &mut AnyConnection, msg: i64, owner: &str, source: &str, correlation: &str) -> Result<Option<RunId>, FlowsError> {
    let now = now_ms();
    let waiters = sqlx::query(
        "SELECT id, waiting_token FROM workflow_runs WHERE status = 'waiting' AND waiting_source = $1 AND waiting_correlation = $2 \
         AND owner = $3 ORDER BY seq LIMIT 5",
    )
    .bind(source)
    .bind(correlation)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    let waiters: Vec<(String, String)> = waiters
        .iter()
        .filter_map(|w| match (w.try_get::<String, _>("id"), w.try_get::<Option<String>, _>("waiting_token")) {
            (Ok(id), Ok(Some(token))) => Some((id, token)),
            _ => None,
        })
        .collect();
    for (run_id, token) in &waiters {
        let taken = sqlx::query("UPDATE workflow_inbox SET consumed_by = $1, consumed_at_ms = $2 WHERE id = $3 AND consumed_by IS NULL")
            .bind(token)
            .bind(now)
            .bind(msg)
            .execute(&mut *conn)
            .await?;
        if taken.rows_affected() == 0 {
            // A waiting run took the message from the inbox itself meanwhile: say which.
            let by: Option<String> =
                sqlx::query("SELECT consumed_by FROM workflow_inbox WHERE id = $1").bind(msg).fetch_one(&mut *conn).await?.try_get("consumed_by")?;
            return Ok(waiters.iter().find(|(_, t)| Some(t) == by.as_ref()).map(|(id, _)| id.clone()));
        }
        let woken = sqlx::query("UPDATE workflow_runs SET nudged = 1 WHERE id = $1 AND waiting_token = $2")
            .bind(run_id)
            .bind(token)
            .execute(&mut *conn)
            .await?;
        if woken.rows_affected() == 1 {
            return Ok(Some(run_id.clone()));
        }
        // That wait ended meanwhile (timeout): give the message back and try the next waiter.
        sqlx::query("UPDATE workflow_inbox SET consumed_by = NULL, consumed_at_ms = NULL WHERE id = $1").bind(msg).execute(&mut *conn).await?;
    }
    Ok(None)
}

fn to_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("JSON values serialize")
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Inbound sources by name. None configured: no run may wait on any source.
    sources: Arc<HashMap<String, InboundSource>>,
    limits: Limits,
}

impl Store {
    /// A store with the default [`Limits`] and no inbound sources.
    pub fn new(pool: AnyPool) -> Store {
        Store { pool, sources: Arc::new(HashMap::new()), limits: Limits::default() }
    }

    /// Who owns which inbound source (by the `{source}` of `/api/v1/inbound/{source}`).
    pub fn with_inbound_sources(mut self, sources: HashMap<String, InboundSource>) -> Store {
        self.sources = Arc::new(sources);
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Store {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn inbound_source(&self, name: &str) -> Option<&InboundSource> {
        self.sources.get(name)
    }

    /// Whether `owner`'s runs may wait on `source`.
    pub fn owns_source(&self, owner: &str, source: &str) -> bool {
        self.sources.get(source).is_some_and(|s| s.owner == owner)
    }

    /// What a definition must also respect for its owner, beyond its own validity (issue 14): it waits
    /// only on inbound sources of its owner's (the built-in examples excepted: their waits are checked
    /// when a run reaches them) and never emits a system event type.
    fn check_for_owner(&self, owner: &Owner, def: &WorkflowDefinition, builtin: bool) -> Result<(), FlowsError> {
        let mut errs = Vec::new();
        for (i, step) in def.steps.iter().enumerate() {
            for (at, action) in [("action", Some(&step.action)), ("compensate", step.compensate.as_ref())] {
                match action {
                    Some(Action::WaitInbound { source, .. }) if !builtin && !self.owns_source(owner, source) => {
                        let shown: String = source.chars().take(60).collect();
                        errs.push(FieldError::new(format!("steps[{i}].{at}.source"), format!("{shown:?} is not an inbound source of yours")));
                    }
                    Some(Action::EmitEvent { event_type, .. }) if is_reserved_event_type(event_type) => errs.push(FieldError::new(
                        format!("steps[{i}].{at}.event_type"),
                        format!("is a system event type ({}…): workflows cannot emit it", RESERVED_EVENT_PREFIXES.join("…, ")),
                    )),
                    _ => {}
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(FlowsError::Invalid(errs))
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Creates or upgrades the workflow tables.
    pub async fn migrate(&self) -> Result<(), FlowsError> {
        db::migrate(&self.pool, &MIGRATIONS).await?;
        Ok(())
    }

    // ---- definitions ----

    /// Validates and stores a definition; its `name` must be new for this owner (409 otherwise), and the
    /// owner may keep at most [`Limits::max_definitions_per_owner`] (422 `quota_exceeded`).
    pub async fn create_definition(&self, owner: &Owner, source: &str, format: Format) -> Result<DefinitionRecord, FlowsError> {
        self.insert_definition(owner, source, format, false).await
    }

    async fn insert_definition(&self, owner: &Owner, source: &str, format: Format, builtin: bool) -> Result<DefinitionRecord, FlowsError> {
        let def = WorkflowDefinition::parse(source, format)?;
        self.check_for_owner(owner, &def, builtin)?;
        let now = now_ms();
        // The limit and the insert in one statement, so a burst cannot slip past it on SQLite (one
        // writer); on PostgreSQL concurrent creations could overshoot by a few, which is harmless.
        let r = sqlx::query(&format!(
            "INSERT INTO workflow_definitions (owner, name, version, format, source, created_at_ms, updated_at_ms) \
             SELECT $1, $2, 1, $3, $4, $5, $5 WHERE (SELECT COUNT(*) FROM workflow_definitions WHERE owner = $6 AND name NOT IN ({})) < $7 \
             RETURNING id",
            builtin_names_sql()
        ))
        .bind(owner)
        .bind(&def.name)
        .bind(format.as_str())
        .bind(source)
        .bind(now)
        .bind(owner)
        .bind(if builtin { i64::MAX } else { i64::from(self.limits.max_definitions_per_owner) })
        .fetch_optional(&self.pool)
        .await;
        match r {
            Ok(None) => Err(FlowsError::Quota {
                message: format!(
                    "You have {} workflows, the most one account may keep. Delete one you no longer use first.",
                    self.limits.max_definitions_per_owner
                ),
                transient: false,
            }),
            Ok(Some(row)) => self.get_definition(owner, row.try_get("id")?).await,
            Err(e) if db::is_unique_violation(&e) => Err(FlowsError::Conflict(format!("a workflow named {:?} already exists", def.name))),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a definition's text (the name may change if the new one is free); version + 1.
    /// Runs already started keep the snapshot they started with.
    pub async fn update_definition(&self, owner: &Owner, id: i64, source: &str, format: Format) -> Result<DefinitionRecord, FlowsError> {
        let def = WorkflowDefinition::parse(source, format)?;
        self.check_for_owner(owner, &def, false)?;
        let r = sqlx::query(
            "UPDATE workflow_definitions SET name = $1, format = $2, source = $3, version = version + 1, updated_at_ms = $4 \
             WHERE id = $5 AND owner = $6",
        )
        .bind(&def.name)
        .bind(format.as_str())
        .bind(source)
        .bind(now_ms())
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await;
        match r {
            Ok(done) if done.rows_affected() == 0 => Err(FlowsError::NotFound),
            Ok(_) => self.get_definition(owner, id).await,
            Err(e) if db::is_unique_violation(&e) => Err(FlowsError::Conflict(format!("a workflow named {:?} already exists", def.name))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_definition(&self, owner: &Owner, id: i64) -> Result<DefinitionRecord, FlowsError> {
        let row = sqlx::query("SELECT * FROM workflow_definitions WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(FlowsError::NotFound)?;
        definition_from_row(&row)
    }

    pub async fn find_definition(&self, owner: &Owner, name: &str) -> Result<DefinitionRecord, FlowsError> {
        let row = sqlx::query("SELECT * FROM workflow_definitions WHERE owner = $1 AND name = $2")
            .bind(owner)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(FlowsError::NotFound)?;
        definition_from_row(&row)
    }

    /// Newest first.
    pub async fn list_definitions(&self, owner: &Owner, page: Page) -> Result<Paged<DefinitionRecord>, FlowsError> {
        let (limit, cursor) = page_bounds(&page)?;
        let rows = sqlx::query("SELECT * FROM workflow_definitions WHERE owner = $1 AND id < $2 ORDER BY id DESC LIMIT $3")
            .bind(owner)
            .bind(cursor.unwrap_or(i64::MAX))
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(definition_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = (items.len() as i64 > limit).then(|| {
            items.truncate(limit as usize);
            items.last().map(|d| d.id.to_string()).unwrap_or_default()
        });
        Ok(Paged { items, next_cursor })
    }

    /// Deletes a definition. Its runs stay (they carry their own snapshot).
    pub async fn delete_definition(&self, owner: &Owner, id: i64) -> Result<(), FlowsError> {
        let done = sqlx::query("DELETE FROM workflow_definitions WHERE id = $1 AND owner = $2").bind(id).bind(owner).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(FlowsError::NotFound);
        }
        Ok(())
    }

    /// Stores the built-in workflows for `owner`, skipping those already there (by name).
    pub async fn install_builtins(&self, owner: &Owner) -> Result<Vec<DefinitionRecord>, FlowsError> {
        let mut out = Vec::new();
        for (name, source) in crate::builtin::all() {
            match self.find_definition(owner, name).await {
                Ok(d) => out.push(d),
                Err(FlowsError::NotFound) => match self.insert_definition(owner, source, Format::Toml, true).await {
                    Ok(d) => out.push(d),
                    // Installed meanwhile by a concurrent request.
                    Err(FlowsError::Conflict(_)) => out.push(self.find_definition(owner, name).await?),
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    // ---- runs: what the API does ----

    /// Records a new run, ready for the next engine poll. Returns its id (the existing run's id for a
    /// repeated idempotency key). The owner may have at most [`Limits::max_active_runs_per_owner`] runs
    /// active at once (429 `quota_exceeded`).
    pub async fn start_run(&self, owner: &Owner, new: NewRun) -> Result<RunId, FlowsError> {
        let mut conn = self.pool.acquire().await?;
        self.start_run_on(&mut conn, owner, new).await
    }

    /// [`Self::start_run`] on the caller's connection (or transaction).
    pub async fn start_run_on(&self, conn: &mut AnyConnection, owner: &Owner, new: NewRun) -> Result<RunId, FlowsError> {
        if let Some(k) = &new.idempotency_key {
            if k.is_empty() || k.len() > 200 {
                return Err(FlowsError::invalid("idempotency_key", "must be 1 to 200 characters"));
            }
            if let Some(id) = run_by_idempotency_key(conn, owner, k).await? {
                return Ok(id);
            }
        }
        let (definition_id, version, def) = match new.definition {
            DefinitionRef::Id(id) => {
                let row = sqlx::query("SELECT * FROM workflow_definitions WHERE id = $1 AND owner = $2")
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or(FlowsError::NotFound)?;
                let d = definition_from_row(&row)?;
                (Some(d.id), d.version, d.definition)
            }
            DefinitionRef::Name(name) => {
                let row = sqlx::query("SELECT * FROM workflow_definitions WHERE owner = $1 AND name = $2")
                    .bind(owner)
                    .bind(&name)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or(FlowsError::NotFound)?;
                let d = definition_from_row(&row)?;
                (Some(d.id), d.version, d.definition)
            }
            DefinitionRef::Inline(def) => {
                def.validate()?;
                self.check_for_owner(owner, &def, false)?;
                (None, 0, def)
            }
        };
        def.check_input(&new.input)?;
        let input = to_text(&new.input);
        if input.len() > MAX_PAYLOAD_BYTES {
            return Err(FlowsError::invalid("input", format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON")));
        }
        let state = RunState { steps: vec![StepState::default(); def.steps.len()] };
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let max_active = i64::from(self.limits.max_active_runs_per_owner);
        // The quota and the insert in one statement (see insert_definition).
        let r = sqlx::query(&format!(
            "INSERT INTO workflow_runs (id, owner, definition_id, workflow, definition_version, definition, idempotency_key, input, \
             status, current_step, attempt, state, wake_at_ms, created_at_ms, updated_at_ms, started_by, token_id, scopes) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'running', 0, 0, $9, $10, $10, $10, $11, $12, $13 \
             WHERE (SELECT COUNT(*) FROM workflow_runs WHERE owner = $14 AND status IN {ACTIVE_SQL}) < $15"
        ))
        .bind(&id)
        .bind(owner)
        .bind(definition_id)
        .bind(&def.name)
        .bind(version)
        .bind(to_text(&def))
        .bind(new.idempotency_key.as_deref())
        .bind(input)
        .bind(to_text(&state))
        .bind(now)
        .bind(&new.started_by.kind)
        .bind(new.started_by.token_id)
        .bind(crate::run::scopes_column(&new.started_by))
        .bind(owner)
        .bind(max_active)
        .execute(&mut *conn)
        .await;
        match r {
            Ok(done) if done.rows_affected() == 0 => Err(self.too_many_runs()),
            Ok(_) => Ok(id),
            Err(e) if db::is_unique_violation(&e) && new.idempotency_key.is_some() => {
                // Lost a race with the same key: the winner's run is the answer.
                let k = new.idempotency_key.as_deref().unwrap_or_default();
                run_by_idempotency_key(conn, owner, k).await?.ok_or_else(|| FlowsError::internal("idempotent start", "winner vanished"))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn too_many_runs(&self) -> FlowsError {
        FlowsError::Quota {
            message: format!(
                "You have {} workflow runs in progress, the most one account may have at once. Wait for some to finish, or cancel some.",
                self.limits.max_active_runs_per_owner
            ),
            transient: true,
        }
    }

    pub(crate) async fn load_run(&self, id: &str) -> Result<Option<RunRow>, FlowsError> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn owned_run(&self, owner: &Owner, id: &str) -> Result<RunRow, FlowsError> {
        match self.load_run(id).await? {
            Some(r) if r.rec.owner == owner => Ok(r),
            // Someone else's run does not exist, as far as this owner can tell.
            _ => Err(FlowsError::NotFound),
        }
    }

    pub async fn get_run(&self, owner: &Owner, id: &str) -> Result<RunRecord, FlowsError> {
        Ok(self.owned_run(owner, id).await?.rec)
    }

    /// Newest first.
    pub async fn list_runs(&self, owner: &Owner, filter: &RunFilter, page: Page) -> Result<Paged<RunRecord>, FlowsError> {
        let (limit, cursor) = page_bounds(&page)?;
        let mut sql = format!("SELECT seq, {LISTED_RUN_COLUMNS} FROM workflow_runs WHERE owner = $1 AND seq < $2");
        let mut n = 2;
        if filter.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if filter.workflow.is_some() {
            n += 1;
            sql.push_str(&format!(" AND workflow = ${n}"));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql).bind(owner).bind(cursor.unwrap_or(i64::MAX));
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(w) = &filter.workflow {
            q = q.bind(w.as_str());
        }
        let rows = q.bind(limit + 1).fetch_all(&self.pool).await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last_seq = 0i64;
        for (i, row) in rows.iter().enumerate() {
            if i as i64 == limit {
                break;
            }
            last_seq = row.try_get("seq")?;
            items.push(record_from_row(row)?);
        }
        let next_cursor = (rows.len() as i64 > limit).then(|| last_seq.to_string());
        Ok(Paged { items, next_cursor })
    }

    /// The run's attempts in the order they happened, compensations included, grouped by step.
    pub async fn timeline(&self, owner: &Owner, id: &str) -> Result<Timeline, FlowsError> {
        let run = self.owned_run(owner, id).await?.rec;
        let attempts = self.attempts(id).await?;
        Ok(crate::run::group_timeline(run, attempts))
    }

    pub(crate) async fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, FlowsError> {
        let rows = sqlx::query("SELECT * FROM workflow_step_attempts WHERE run_id = $1 ORDER BY id").bind(run_id).fetch_all(&self.pool).await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Manual retry of a run that ended badly.
    ///
    /// - `failed`: the run goes forward again from its first step that is not `completed` — the step
    ///   that failed, or an earlier one whose compensation undid it. Steps whose effects still stand
    ///   (completed and never compensated, e.g. ones without a compensation) are not executed again
    ///   and keep their outputs. Attempt counts start afresh.
    /// - `compensation_failed`: the compensations resume at the one that failed; the run then ends
    ///   `failed` (and can be retried forward from there).
    /// - anything else: 409.
    ///
    /// The run then carries `by` (who retried it) instead of who started it: it goes on with the
    /// retrier's rights. A retry counts against the active-runs limit like a start.
    pub async fn retry_run(&self, owner: &Owner, id: &str, by: &StartedBy) -> Result<RunRecord, FlowsError> {
        let run = self.owned_run(owner, id).await?;
        let now = now_ms();
        let (status, current_step, steps) = match run.rec.status {
            RunStatus::Failed => {
                let mut steps = run.rec.steps.clone();
                for s in steps.iter_mut().filter(|s| s.status != StepStatus::Completed) {
                    *s = StepState::default();
                }
                let first = steps.iter().position(|s| s.status != StepStatus::Completed).unwrap_or(steps.len());
                (RunStatus::Running, first as i64, steps)
            }
            RunStatus::CompensationFailed => (RunStatus::Compensating, run.rec.current_step, run.rec.steps.clone()),
            s => return Err(FlowsError::Conflict(format!("a {} run cannot be retried", s.as_str()))),
        };
        if self.active_runs(owner).await? >= i64::from(self.limits.max_active_runs_per_owner) {
            return Err(self.too_many_runs());
        }
        // The record answered is the row as this update left it (RETURNING), not a read after it: the
        // engine may claim the run and move it on the moment it is committed.
        let updated = sqlx::query(&format!(
            "UPDATE workflow_runs SET status = $1, current_step = $2, attempt = 0, state = $3, cancel_requested = 0, \
             failed_step = CASE WHEN $4 = 1 THEN failed_step ELSE NULL END, \
             error_code = CASE WHEN $4 = 1 THEN error_code ELSE NULL END, \
             error_message = CASE WHEN $4 = 1 THEN error_message ELSE NULL END, \
             wake_at_ms = $5, nudged = 1, wait_until_ms = NULL, waiting_source = NULL, waiting_correlation = NULL, \
             waiting_token = NULL, finished_at_ms = NULL, updated_at_ms = $5, started_by = $8, token_id = $9, scopes = $10 \
             WHERE id = $6 AND status = $7 RETURNING {RUN_COLUMNS}"
        ))
        .bind(status.as_str())
        .bind(current_step)
        .bind(to_text(&RunState { steps }))
        .bind(i64::from(status == RunStatus::Compensating))
        .bind(now)
        .bind(id)
        .bind(run.rec.status.as_str())
        .bind(&by.kind)
        .bind(by.token_id)
        .bind(crate::run::scopes_column(by))
        .fetch_optional(&self.pool)
        .await?;
        match updated {
            Some(row) => Ok(run_from_row(&row)?.rec),
            None => Err(FlowsError::Conflict("the run changed meanwhile; reload it".into())),
        }
    }

    /// The owner's runs that are `running`, `waiting` or `compensating`.
    pub async fn active_runs(&self, owner: &Owner) -> Result<i64, FlowsError> {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM workflow_runs WHERE owner = $1 AND status IN {ACTIVE_SQL}"))
            .bind(owner)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Asks the engine to stop the run and undo its completed steps (last first); the run ends
    /// `cancelled` (or `compensation_failed`). An attempt in flight finishes first. 409 if the run is
    /// final or already compensating.
    pub async fn cancel_run(&self, owner: &Owner, id: &str) -> Result<RunRecord, FlowsError> {
        let run = self.owned_run(owner, id).await?;
        let done = sqlx::query(
            "UPDATE workflow_runs SET cancel_requested = 1, nudged = 1, updated_at_ms = $1 \
             WHERE id = $2 AND status IN ('running', 'waiting')",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(FlowsError::Conflict(format!("a {} run cannot be cancelled", run.rec.status.as_str())));
        }
        self.get_run(owner, id).await
    }

    /// An inbound message for `wait_inbound` steps. It belongs to the source's owner: the first of that
    /// owner's runs waiting on (`source`, `correlation`) takes it as its step output, and that run is
    /// returned. With no run waiting yet, the message is kept and the next of the owner's runs to reach a
    /// matching wait takes it (so a fast confirmation cannot race the run). A source nobody owns stores
    /// nothing.
    pub async fn deliver_inbound(&self, source: &str, correlation: &str, payload: &Value) -> Result<Option<RunId>, FlowsError> {
        let text = checked_payload(payload)?;
        let Some(owner) = self.sources.get(source).map(|s| s.owner.clone()) else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let msg = insert_message(&mut conn, &owner, source, correlation, &text).await?;
        hand_over(&mut conn, msg, &owner, source, correlation).await
    }

    /// Everything an accepted inbound webhook does, on the transaction that claims its `webhook-id`
    /// (issue 14): so a failure leaves the id unclaimed for the sender's retry, and of two concurrent
    /// copies one does it all and the other finds the id taken. A body with a `correlation` is stored for
    /// the owner's runs (and handed to one already waiting); a source configured with a workflow starts
    /// a run of it when no waiting run took the message, with the source's scopes. Call
    /// [`Self::after_inbound`] once committed.
    pub async fn receive_inbound(
        &self,
        conn: &mut AnyConnection,
        source: &str,
        webhook_id: &str,
        correlation: Option<&str>,
        payload: &Value,
    ) -> Result<InboundEffect, FlowsError> {
        let text = checked_payload(payload)?;
        let Some(src) = self.sources.get(source) else {
            return Ok(InboundEffect::default());
        };
        let mut effect = InboundEffect { owner: Some(src.owner.clone()), ..Default::default() };
        if let Some(c) = correlation {
            let msg = insert_message(conn, &src.owner, source, c, &text).await?;
            effect.message = Some(msg);
            effect.resumed_run = hand_over(conn, msg, &src.owner, source, c).await?;
        }
        if let (Some(name), None) = (&src.workflow, &effect.resumed_run) {
            let new = NewRun {
                definition: DefinitionRef::Name(name.clone()),
                input: payload.clone(),
                // The same webhook never starts two runs.
                idempotency_key: Some(format!("inbound:{source}:{webhook_id}")),
                started_by: StartedBy::inbound(source, src.scopes.clone()),
            };
            effect.started_run = Some(self.start_run_on(conn, &src.owner, new).await?);
        }
        Ok(effect)
    }

    /// After [`Self::receive_inbound`] committed: a message no run had taken inside the transaction is
    /// offered again to the owner's waiting runs (a run that began waiting meanwhile could not see the
    /// uncommitted message, nor the transaction its wait). Returns the run that took it, if any.
    pub async fn after_inbound(&self, source: &str, correlation: Option<&str>, effect: &InboundEffect) -> Result<Option<RunId>, FlowsError> {
        match (&effect.owner, effect.message, correlation, &effect.resumed_run) {
            (Some(owner), Some(msg), Some(c), None) => {
                let mut conn = self.pool.acquire().await?;
                hand_over(&mut conn, msg, owner, source, c).await
            }
            _ => Ok(effect.resumed_run.clone()),
        }
    }

    // ---- runs: what the engine does ----

    /// Leases up to `limit` runs that are due (timer passed or nudged) and not leased by anyone alive,
    /// at most `per_owner` of any one owner counting the `busy` ones this instance already drives (so one
    /// owner's slow runs cannot take every slot). Returns each run with its owner.
    pub(crate) async fn claim_due(
        &self,
        token: &str,
        lease_ms: i64,
        limit: usize,
        per_owner: usize,
        busy: &HashMap<String, usize>,
    ) -> Result<Vec<(RunId, String)>, FlowsError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let per_owner = per_owner.max(1);
        let now = now_ms();
        let due = format!("status IN {ACTIVE_SQL} AND (nudged = 1 OR wake_at_ms <= $1) AND (lease_until_ms IS NULL OR lease_until_ms < $1)");
        // Owners at their share are skipped in the query, so their backlog does not hide other owners'
        // due runs; a few more rows than slots leave room for the ones skipped below.
        let full: Vec<&String> = busy.iter().filter(|(_, n)| **n >= per_owner).map(|(o, _)| o).collect();
        let mut sql = format!("SELECT id, owner FROM workflow_runs WHERE {due}");
        if !full.is_empty() {
            let marks: Vec<String> = (0..full.len()).map(|i| format!("${}", i + 3)).collect();
            sql.push_str(&format!(" AND owner NOT IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY wake_at_ms LIMIT $2");
        let mut q = sqlx::query(&sql).bind(now).bind((limit * 4).min(1000) as i64);
        for o in &full {
            q = q.bind(o.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut taken: HashMap<String, usize> = HashMap::new();
        let mut claimed = Vec::new();
        for row in rows {
            if claimed.len() >= limit {
                break;
            }
            let id: String = row.try_get("id")?;
            let owner: String = row.try_get("owner")?;
            let mine = busy.get(&owner).copied().unwrap_or(0) + taken.get(&owner).copied().unwrap_or(0);
            if mine >= per_owner {
                continue;
            }
            // The same condition again, atomically: of two instances racing for a run, one updates it
            // and the other finds the condition false (PostgreSQL re-checks it after the winner commits).
            let done = sqlx::query(&format!("UPDATE workflow_runs SET lease_owner = $2, lease_until_ms = $3, nudged = 0 WHERE id = $4 AND {due}"))
                .bind(now)
                .bind(token)
                .bind(now + lease_ms)
                .bind(&id)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 1 {
                *taken.entry(owner.clone()).or_default() += 1;
                claimed.push((id, owner));
            }
        }
        Ok(claimed)
    }

    /// The run, if `token` still holds its lease.
    pub(crate) async fn load_leased(&self, id: &str, token: &str) -> Result<Option<RunRow>, FlowsError> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = $1 AND lease_owner = $2"))
            .bind(id)
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    pub(crate) async fn renew_lease(&self, id: &str, token: &str, lease_ms: i64) -> Result<bool, FlowsError> {
        let done = sqlx::query("UPDATE workflow_runs SET lease_until_ms = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(now_ms() + lease_ms)
            .bind(id)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release_lease(&self, id: &str, token: &str) -> Result<(), FlowsError> {
        sqlx::query("UPDATE workflow_runs SET lease_owner = NULL, lease_until_ms = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Writes the engine's view of the run and the attempt-log changes in one transaction, if `token`
    /// still holds the lease. `false`: the lease is gone (another instance owns the run now).
    pub(crate) async fn save(&self, run: &RunRow, token: &str, worker: &str, ops: &[AttemptOp]) -> Result<bool, FlowsError> {
        let now = now_ms();
        let r = &run.rec;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE workflow_runs SET status = $1, current_step = $2, attempt = $3, state = $4, failed_step = $5, error_code = $6, \
             error_message = $7, wake_at_ms = $8, wait_until_ms = $9, waiting_source = $10, waiting_correlation = $11, \
             waiting_token = $12, updated_at_ms = $13, finished_at_ms = $14 WHERE id = $15 AND lease_owner = $16",
        )
        .bind(r.status.as_str())
        .bind(r.current_step)
        .bind(r.attempt)
        .bind(to_text(&RunState { steps: r.steps.clone() }))
        .bind(r.failed_step)
        .bind(r.error_code.as_deref())
        .bind(r.error_message.as_deref())
        .bind(r.wake_at_ms)
        .bind(run.wait_until_ms)
        .bind(r.waiting_source.as_deref())
        .bind(r.waiting_correlation.as_deref())
        .bind(run.waiting_token.as_deref())
        .bind(now)
        .bind(r.finished_at_ms)
        .bind(&r.id)
        .bind(token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for op in ops {
            match op {
                AttemptOp::Interrupt => {
                    sqlx::query(
                        "UPDATE workflow_step_attempts SET outcome = 'interrupted', finished_at_ms = $1, error_code = 'interrupted', \
                         error_message = 'the worker stopped during this attempt; it may or may not have taken effect' \
                         WHERE run_id = $2 AND finished_at_ms IS NULL AND outcome = 'running'",
                    )
                    .bind(now)
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
                }
                AttemptOp::Begin { step_index, step_name, phase, attempt, outcome } => {
                    sqlx::query(
                        "INSERT INTO workflow_step_attempts (run_id, step_index, step_name, phase, attempt, outcome, started_at_ms, worker) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&r.id)
                    .bind(*step_index)
                    .bind(step_name.as_str())
                    .bind(phase.as_str())
                    .bind(*attempt)
                    .bind(outcome.as_str())
                    .bind(now)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?;
                }
                AttemptOp::Finish { outcome, output, error, next_attempt_at_ms } => {
                    sqlx::query(
                        "UPDATE workflow_step_attempts SET outcome = $1, finished_at_ms = $2, output = $3, error_code = $4, \
                         error_message = $5, next_attempt_at_ms = $6 WHERE run_id = $7 AND finished_at_ms IS NULL",
                    )
                    .bind(outcome.as_str())
                    .bind(now)
                    .bind(output.as_ref().map(to_text))
                    .bind(error.as_ref().map(|e| e.0.as_str()))
                    .bind(error.as_ref().map(|e| e.1.as_str()))
                    .bind(*next_attempt_at_ms)
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Takes the oldest unclaimed inbound message for a wait, marking it with the wait's token.
    /// Only `owner`'s messages: another user's run never sees them, whatever it waits on.
    pub(crate) async fn take_inbound(&self, owner: &str, source: &str, correlation: &str, token: &str) -> Result<Option<Value>, FlowsError> {
        if let Some(v) = self.inbound_taken_by(token).await? {
            return Ok(Some(v));
        }
        sqlx::query(
            "UPDATE workflow_inbox SET consumed_by = $1, consumed_at_ms = $2 WHERE consumed_by IS NULL AND id = \
             (SELECT id FROM workflow_inbox WHERE owner = $3 AND source = $4 AND correlation = $5 AND consumed_by IS NULL ORDER BY id LIMIT 1)",
        )
        .bind(token)
        .bind(now_ms())
        .bind(owner)
        .bind(source)
        .bind(correlation)
        .execute(&self.pool)
        .await?;
        self.inbound_taken_by(token).await
    }

    async fn inbound_taken_by(&self, token: &str) -> Result<Option<Value>, FlowsError> {
        let row = sqlx::query("SELECT payload FROM workflow_inbox WHERE consumed_by = $1 ORDER BY id LIMIT 1")
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| json_col(&r, "payload")).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A remembered parse is the parse of that very text, whichever format it came in; text that does
    /// not parse is refused every time, never remembered.
    #[test]
    fn stored_definitions_parse_the_same_from_memory() {
        let toml = crate::builtin::ONBOARDING_TOML;
        let fresh: WorkflowDefinition = toml::from_str(toml).unwrap();
        assert_eq!(serde_json::to_value(parse_stored(Format::Toml, toml).unwrap()).unwrap(), serde_json::to_value(&fresh).unwrap());
        assert_eq!(serde_json::to_value(parse_stored(Format::Toml, toml).unwrap()).unwrap(), serde_json::to_value(&fresh).unwrap());
        let as_json = serde_json::to_string(&fresh).unwrap();
        assert_eq!(serde_json::to_value(parse_stored(Format::Json, &as_json).unwrap()).unwrap(), serde_json::to_value(&fresh).unwrap());
        assert!(parsed_definitions().get(&SourceRef(true, toml)).is_some(), "a repeat is found by the borrowed text");
        assert!(parsed_definitions().get(&SourceRef(false, toml)).is_none(), "the format is part of the key");
        let edited = toml.replacen("customer_onboarding", "customer_onboarding_2", 1);
        assert_ne!(parse_stored(Format::Toml, &edited).unwrap().name, fresh.name, "another text, another parse");
        for _ in 0..2 {
            assert!(parse_stored(Format::Toml, "name = ").is_err());
            assert!(parse_stored(Format::Json, toml).is_err(), "TOML text is not JSON, even after its TOML parse was remembered");
        }
    }

    async fn claim(store: &Store, token: &str, lease_ms: i64, limit: usize) -> Vec<RunId> {
        store.claim_due(token, lease_ms, limit, 8, &HashMap::new()).await.unwrap().into_iter().map(|(id, _)| id).collect()
    }

    async fn one_run(store: &Store) -> RunId {
        let def = WorkflowDefinition::from_json(r#"{"name":"x","steps":[{"name":"a","action":{"type":"call","name":"a"}}]}"#).unwrap();
        store
            .start_run(
                &Owner::from("alice"),
                NewRun { definition: DefinitionRef::Inline(def), input: json!({}), idempotency_key: None, started_by: StartedBy::session() },
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_lease_excludes_other_instances_until_it_expires_and_fences_the_old_holder() {
        for db in db::testing::engines().await {
            let store = Store::new(db.connect().await);
            store.migrate().await.unwrap();
            let id = one_run(&store).await;
            assert_eq!(claim(&store, "a#1", 300, 10).await, vec![id.clone()]);
            assert!(claim(&store, "b#1", 300, 10).await.is_empty(), "{}: leased by a", db.engine.as_str());
            let mut run = store.load_leased(&id, "a#1").await.unwrap().expect("a holds it");
            assert!(store.load_leased(&id, "b#1").await.unwrap().is_none());
            run.rec.attempt = 1;
            assert!(store.save(&run, "a#1", "a", &[]).await.unwrap());

            // a stops renewing (a crash): after the lease, b takes the run and a's writes bounce.
            tokio::time::sleep(std::time::Duration::from_millis(350)).await;
            assert_eq!(claim(&store, "b#1", 300, 10).await, vec![id.clone()]);
            run.rec.attempt = 99;
            assert!(!store.save(&run, "a#1", "a", &[]).await.unwrap(), "fenced: a no longer holds the lease");
            assert!(!store.renew_lease(&id, "a#1", 300).await.unwrap());
            store.release_lease(&id, "a#1").await.unwrap();
            assert_eq!(store.load_leased(&id, "b#1").await.unwrap().unwrap().rec.attempt, 1, "a's late write did not land, nor its release");

            // Released by its holder, a run that is not due is not claimed; a nudge makes it due.
            store.release_lease(&id, "b#1").await.unwrap();
            sqlx::query("UPDATE workflow_runs SET wake_at_ms = $1 WHERE id = $2")
                .bind(now_ms() + 60_000)
                .bind(&id)
                .execute(store.pool())
                .await
                .unwrap();
            assert!(claim(&store, "c#1", 300, 10).await.is_empty(), "timer in the future");
            store.cancel_run(&Owner::from("alice"), &id).await.unwrap();
            assert_eq!(claim(&store, "c#1", 300, 10).await, vec![id.clone()], "the cancel nudged it");
            assert!(claim(&store, "d#1", 300, 10).await.is_empty(), "the claim consumed the nudge and holds the lease");
        }
    }

    #[tokio::test]
    async fn the_attempt_log_is_written_with_the_run_in_one_transaction() {
        for db in db::testing::engines().await {
            let store = Store::new(db.connect().await);
            store.migrate().await.unwrap();
            let id = one_run(&store).await;
            claim(&store, "a#1", 10_000, 1).await;
            let run = store.load_leased(&id, "a#1").await.unwrap().unwrap();
            let begin =
                AttemptOp::Begin { step_index: 0, step_name: "a".into(), phase: Phase::Forward, attempt: 1, outcome: AttemptOutcome::Running };
            assert!(store.save(&run, "a#1", "a", std::slice::from_ref(&begin)).await.unwrap());
            // A new attempt after a crash closes the open one as interrupted.
            assert!(store.save(&run, "a#1", "a", &[AttemptOp::Interrupt, begin]).await.unwrap());
            let fin =
                AttemptOp::Finish { outcome: AttemptOutcome::Succeeded, output: Some(json!({"ok": true})), error: None, next_attempt_at_ms: None };
            assert!(store.save(&run, "a#1", "a", std::slice::from_ref(&fin)).await.unwrap());
            // Fenced: nothing of a rejected save reaches the log.
            assert!(!store.save(&run, "z#9", "z", &[AttemptOp::Interrupt, fin]).await.unwrap());
            let log: Vec<(AttemptOutcome, Option<Value>)> = store.attempts(&id).await.unwrap().into_iter().map(|a| (a.outcome, a.output)).collect();
            assert_eq!(log, [(AttemptOutcome::Interrupted, None), (AttemptOutcome::Succeeded, Some(json!({"ok": true})))]);
        }
    }

    #[tokio::test]
    async fn an_inbound_message_is_taken_once() {
        for db in db::testing::engines().await {
            let crm = InboundSource { owner: "alice".into(), scopes: vec![], workflow: None };
            let store = Store::new(db.connect().await).with_inbound_sources(HashMap::from([("crm".to_string(), crm)]));
            store.migrate().await.unwrap();
            store.deliver_inbound("crm", "c-1", &json!({"n": 1})).await.unwrap();
            store.deliver_inbound("crm", "c-1", &json!({"n": 2})).await.unwrap();
            assert_eq!(store.take_inbound("alice", "crm", "c-1", "t1").await.unwrap(), Some(json!({"n": 1})), "oldest first");
            assert_eq!(store.take_inbound("alice", "crm", "c-1", "t1").await.unwrap(), Some(json!({"n": 1})), "the same wait sees its message again");
            assert_eq!(store.take_inbound("alice", "crm", "c-1", "t2").await.unwrap(), Some(json!({"n": 2})));
            assert_eq!(store.take_inbound("alice", "crm", "c-1", "t3").await.unwrap(), None);
            assert_eq!(store.take_inbound("alice", "crm", "c-2", "t4").await.unwrap(), None);
            store.deliver_inbound("crm", "c-3", &json!({"n": 3})).await.unwrap();
            assert_eq!(store.take_inbound("bob", "crm", "c-3", "t5").await.unwrap(), None, "alice's source: never bob's, whatever he waits on");
            assert_eq!(store.deliver_inbound("erp", "c-3", &json!({})).await.unwrap(), None, "a source nobody owns stores nothing");
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM workflow_inbox WHERE source = 'erp'").fetch_one(store.pool()).await.unwrap();
            assert_eq!(n, 0);
        }
    }
}
