//! Eval suites (`evals/*.toml`) and their datasets (JSONL).
//!
//! ```toml
//! name = "assistant"                  # default: the file's stem
//! target = { agent = "assistant" }    # an agent of glassbox.toml
//! dataset = "assistant.jsonl"         # relative to this file (an absolute path is used as is)
//! recordings = "assistant.recordings.jsonl"  # default: <dataset stem>.recordings.jsonl
//! concurrency = 4                     # cases run at once (default 4)
//! case_timeout_ms = 60000             # one case's run (default 60 s)
//! scorer_timeout_ms = 30000           # one scorer on one case (default 30 s)
//!
//! [gate]
//! min_pass_rate = 0.9                 # share of cases passing every scorer (default 1.0)
//! max_drop = 0.05                     # against the baseline report, overall and per scorer
//! baseline = "baselines/assistant.json"
//!
//! [tools.get_weather]                 # pin a tool: it answers this and is never called
//! result = { temperature_2m = 21.5 }
//!
//! [[scorers]]
//! type = "contains"                   # see `scorers` for every type and its keys
//! value = "hello"
//! threshold = 1.0
//! min_pass_rate = 0.9                 # this scorer's own gate
//! ```
//!
//! A dataset row: `{"id": "c1", "input": "text" | [{"role", "content"}], "expected": ..,
//! "metadata": {..}}`; only `input` is required.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use glassbox_core::Message;
use serde::Deserialize;
use serde_json::Value;

use crate::scorers::ScorerSpec;

/// What a suite runs. Agents today; a workflow target is one more variant here and one more
/// arm where targets are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    Agent(String),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Agent(_) => "agent",
        }
    }
    pub fn id(&self) -> &str {
        match self {
            Self::Agent(id) => id,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.id())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: Option<String>,
    #[serde(default)]
    description: String,
    target: Target,
    dataset: PathBuf,
    recordings: Option<PathBuf>,
    concurrency: Option<usize>,
    case_timeout_ms: Option<u64>,
    scorer_timeout_ms: Option<u64>,
    #[serde(default)]
    gate: GateFile,
    #[serde(default)]
    tools: BTreeMap<String, StubFile>,
    #[serde(default)]
    scorers: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateFile {
    min_pass_rate: Option<f64>,
    max_drop: Option<f64>,
    baseline: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StubFile {
    result: Value,
}

/// The pass criteria of a suite run.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub min_pass_rate: f64,
    pub max_drop: Option<f64>,
    pub baseline: Option<PathBuf>,
}

/// A loaded, checked suite with its dataset.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub target: Target,
    pub dataset_path: PathBuf,
    pub recordings_path: PathBuf,
    pub concurrency: usize,
    pub case_timeout: Duration,
    pub scorer_timeout: Duration,
    pub gate: Gate,
    /// Tools pinned to a fixed result, by tool id.
    pub tool_stubs: BTreeMap<String, Value>,
    pub scorers: Vec<ScorerSpec>,
    pub cases: Vec<Case>,
}

/// One dataset row.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    /// A string, or an array of `{role, content}` messages.
    pub input: Value,
    pub expected: Option<Value>,
    pub metadata: Value,
}

impl Case {
    /// The conversation an agent receives.
    pub fn messages(&self) -> Result<Vec<Message>, String> {
        match &self.input {
            Value::String(text) => Ok(vec![Message::user(text.clone())]),
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    let content = item.get("content").and_then(Value::as_str).ok_or("a message needs a string `content`")?;
                    match item.get("role").and_then(Value::as_str) {
                        Some("user") => Ok(Message::user(content)),
                        Some("assistant") => Ok(Message::assistant(content)),
                        Some("system") => Ok(Message::system(content)),
                        other => Err(format!("unknown message role {other:?} (user, assistant or system)")),
                    }
                })
                .collect(),
            other => Err(format!("`input` must be a string or an array of messages, found {other}")),
        }
    }

    /// The last user text, what scorers and reports show as the input.
    pub fn input_text(&self) -> String {
        match &self.input {
            Value::String(text) => text.clone(),
            Value::Array(items) => items
                .iter()
                .rev()
                .find(|item| item.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|item| item.get("content").and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    id: Option<String>,
    input: Value,
    expected: Option<Value>,
    #[serde(default)]
    metadata: Value,
}

/// A suite that cannot run: the file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("could not read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn invalid(path: &Path, message: impl Into<String>) -> SuiteError {
    SuiteError::Invalid { path: path.display().to_string(), message: message.into() }
}

fn read(path: &Path) -> Result<String, SuiteError> {
    std::fs::read_to_string(path).map_err(|source| SuiteError::Read { path: path.display().to_string(), source })
}

impl Suite {
    /// Reads a suite file and its dataset, checking everything that can be checked without
    /// the config (scorer tables, dataset rows, gate numbers).
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let text = read(path)?;
        Self::parse(path, &text, load_dataset)
    }

    /// Checks the text of a suite file read from `path` (which names it in errors and anchors
    /// its relative paths); `dataset` loads the cases from the resolved dataset path.
    pub fn parse(
        path: &Path,
        text: &str,
        dataset: impl FnOnce(&Path) -> Result<Vec<Case>, SuiteError>,
    ) -> Result<Self, SuiteError> {
        let file: SuiteFile = toml::from_str(text).map_err(|error| invalid(path, error.to_string().trim_end().to_owned()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = match file.name {
            Some(name) => name,
            None => path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        let dataset_path = dir.join(&file.dataset);
        let recordings_path = match &file.recordings {
            Some(recordings) => dir.join(recordings),
            None => {
                let stem = file.dataset.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
                dataset_path.with_file_name(format!("{stem}.recordings.jsonl"))
            }
        };
        let concurrency = file.concurrency.unwrap_or(4);
        if concurrency == 0 || concurrency > 1024 {
            return Err(invalid(path, format!("concurrency must be between 1 and 1024, got {concurrency}")));
        }
        let fraction = |key: &str, value: Option<f64>| match value {
            Some(number) if !(0.0..=1.0).contains(&number) => {
                Err(invalid(path, format!("gate.{key} must be between 0 and 1, got {number}")))
            }
            other => Ok(other),
        };
        let gate = Gate {
            min_pass_rate: fraction("min_pass_rate", file.gate.min_pass_rate)?.unwrap_or(1.0),
            max_drop: fraction("max_drop", file.gate.max_drop)?,
            baseline: file.gate.baseline.map(|baseline| dir.join(baseline)),
        };
        if file.scorers.is_empty() {
            return Err(invalid(path, "a suite needs at least one [[scorers]] entry"));
        }
        let mut scorers = Vec::with_capacity(file.scorers.len());
        let mut names = HashSet::new();
        for (idx, table) in file.scorers.iter().enumerate() {
            let spec = ScorerSpec::from_json(table, &format!("#{}", idx + 1)).map_err(|error| invalid(path, error.to_string()))?;
            let name = spec.name.clone().unwrap_or_else(|| spec.type_name().to_owned());
            if !names.insert(name.clone()) {
                return Err(invalid(
                    path,
                    format!("scorer #{}: the name {name:?} is used twice; give one of them a `name`", idx + 1),
                ));
            }
            scorers.push(spec);
        }
        let cases = dataset(&dataset_path)?;
        Ok(Self {
            name,
            description: file.description,
            path: path.to_owned(),
            target: file.target,
            dataset_path,
            recordings_path,
            concurrency,
            case_timeout: Duration::from_millis(file.case_timeout_ms.unwrap_or(60_000).max(1)),
            scorer_timeout: Duration::from_millis(file.scorer_timeout_ms.unwrap_or(30_000).max(1)),
            gate,
            tool_stubs: file.tools.into_iter().map(|(tool, stub)| (tool, stub.result)).collect(),
            scorers,
            cases,
        })
    }
}

/// Reads a JSONL dataset; every row is checked, and ids are unique.
pub fn load_dataset(path: &Path) -> Result<Vec<Case>, SuiteError> {
    parse_dataset(&read(path)?, path)
}

/// Checks the text of a JSONL dataset; `path` names it in errors, which give the line.
pub fn parse_dataset(text: &str, path: &Path) -> Result<Vec<Case>, SuiteError> {
    let mut cases = Vec::new();
    let mut ids = HashSet::new();
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row =
            serde_json::from_str(line).map_err(|error| invalid(path, format!("line {line_no}: {error}")))?;
        let case = Case {
            id: row.id.unwrap_or_else(|| format!("line-{line_no}")),
            input: row.input,
            expected: row.expected,
            metadata: row.metadata,
        };
        case.messages().map_err(|message| invalid(path, format!("line {line_no}: {message}")))?;
        if !ids.insert(case.id.clone()) {
            return Err(invalid(path, format!("line {line_no}: the id {:?} is used twice", case.id)));
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(invalid(path, "the dataset has no cases"));
    }
    Ok(cases)
}

/// The suite files of `path`: the file itself, or every `*.toml` directly in the directory,
/// sorted by name.
pub fn discover(path: &Path) -> Result<Vec<PathBuf>, SuiteError> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|source| SuiteError::Read { path: path.display().to_string(), source })?;
    let mut suites: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "toml") && path.is_file())
        .collect();
    suites.sort();
    if suites.is_empty() {
        return Err(invalid(path, "no suite (*.toml) in this directory"));
    }
    Ok(suites)
}
