//! Merging the layers into one TOML document: the file, then `DRIFTWARDEN_…`
//! environment variables, then `key.path=value` overrides. The built-in
//! defaults are the bottom layer implicitly: serde fills every key the
//! merged document lacks from the raw structs' `Default`.
//!
//! Environment and override values are typed by TOML's own grammar (`500`
//! is an integer, `[1, 2]` an array, anything that is not valid TOML is a
//! string). Their original text is kept in [`Provenance`] so that a value
//! that parsed as a number where a string is expected (a numeric group id or
//! password) can fall back to the text, and so that errors can say which
//! variable set the bad value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use toml::{Table, Value};

use super::ConfigError;

/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "DRIFTWARDEN_";

/// Separator between nesting levels in environment variable names.
const ENV_NESTING: &str = "__";

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A full key path such as `models[1].baseline`, displayed the way errors
/// name keys (keys that are not bare TOML keys are quoted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// This path extended by one segment.
    pub fn child(&self, segment: Segment) -> KeyPath {
        let mut path = self.clone();
        path.0.push(segment);
        path
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) if i == 0 => f.write_str(&quote_key(k))?,
                Segment::Key(k) => write!(f, ".{}", quote_key(k))?,
            }
        }
        Ok(())
    }
}

/// `parent.key`, quoting `key` when it is not a bare TOML key.
pub fn child_key(parent: &str, key: &str) -> String {
    format!("{parent}.{}", quote_key(key))
}

fn quote_key(key: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !key.is_empty() && key.chars().all(bare) {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// Where a value set by the environment or an override came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Shown after errors, e.g. `environment variable DRIFTWARDEN_X`.
    pub label: String,
    /// The value as typed, before TOML typing.
    pub text: String,
}

/// Origins of values set above the file, by displayed key path.
#[derive(Debug, Clone, Default)]
pub struct Provenance(BTreeMap<String, Origin>);

impl Provenance {
    /// The origin of the value at exactly `key`.
    pub fn exact(&self, key: &str) -> Option<&Origin> {
        self.0.get(key)
    }

    /// The origin of `key` or of the nearest enclosing key that was set.
    pub fn covering(&self, key: &str) -> Option<&Origin> {
        let encloses = |set: &str| {
            key == set || (key.starts_with(set) && matches!(key.as_bytes()[set.len()], b'.' | b'['))
        };
        self.0
            .iter()
            .rev()
            .find(|(set, _)| encloses(set))
            .map(|(_, o)| o)
    }
}

/// The merged document and where its upper-layer values came from.
#[derive(Debug, Default)]
pub struct Layered {
    /// File, environment and overrides merged.
    pub doc: Table,
    /// Origins of environment and override values.
    pub provenance: Provenance,
}

/// Reads and parses the TOML file; `Ok(None)` when `path` does not exist
/// and `required` is false.
pub fn read_file(path: &Path, required: bool) -> Result<Option<Table>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError::new(
                path.display(),
                format!("cannot read: {e}"),
            ));
        }
    };
    parse_document(&text, &path.display().to_string()).map(Some)
}

/// Parses TOML text; a syntax error is keyed by `name:line:column`.
pub fn parse_document(text: &str, name: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| {
        let at = e.span().map(|s| line_column(text, s.start));
        let key = match at {
            Some((line, column)) => format!("{name}:{line}:{column}"),
            None => name.to_owned(),
        };
        ConfigError::new(
            key,
            format!("TOML syntax error: {}", e.message().trim_end()),
        )
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Applies every `DRIFTWARDEN_A__B=value` variable to `layered`.
///
/// Only names containing `__` are configuration keys, so variables such as
/// `DRIFTWARDEN_CONFIG` or `DRIFTWARDEN_LOG` stay free for the CLI.
/// Variables are applied in name order, so the result does not depend on
/// the environment's order.
pub fn apply_env(
    layered: &mut Layered,
    env: impl Iterator<Item = (String, String)>,
    errors: &mut Vec<ConfigError>,
) {
    let mut vars: Vec<_> = env.filter(|(name, _)| is_config_var(name)).collect();
    vars.sort();

    for (name, text) in vars {
        let label = format!("environment variable {name}");
        match env_key(&name) {
            Ok(path) => apply(layered, path, &text, label, errors),
            Err(message) => errors.push(ConfigError::new(name, message)),
        }
    }
}

fn is_config_var(name: &str) -> bool {
    name.strip_prefix(ENV_PREFIX)
        .is_some_and(|rest| rest.contains(ENV_NESTING))
}

/// `KAFKA__PROPERTIES__SASL_PASSWORD` → `kafka.properties."sasl.password"`.
///
/// Segments are lower-cased; a numeric segment indexes an array. Under
/// `kafka.properties` `_` becomes `.` and under `channels.webhook.headers`
/// it becomes `-`, because those names cannot be spelled in a variable
/// name otherwise.
fn env_key(name: &str) -> Result<KeyPath, String> {
    let rest = name.strip_prefix(ENV_PREFIX).unwrap_or(name);
    let mut words: Vec<String> = Vec::new();
    for word in rest.split(ENV_NESTING) {
        if word.is_empty() {
            return Err("empty key segment in variable name".to_owned());
        }
        let word = word.to_ascii_lowercase();
        let word = match words.as_slice() {
            [a, b] if a == "kafka" && b == "properties" => word.replace('_', "."),
            [a, b, c] if a == "channels" && b == "webhook" && c == "headers" => {
                word.replace('_', "-")
            }
            _ => word,
        };
        words.push(word);
    }
    Ok(KeyPath(words.into_iter().map(segment_from_word).collect()))
}

fn segment_from_word(word: String) -> Segment {
    match word.parse::<usize>() {
        Ok(n) => Segment::Index(n),
        Err(_) => Segment::Key(word),
    }
}

/// Applies every `key.path=value` override to `layered`.
pub fn apply_overrides(
    layered: &mut Layered,
    overrides: &[(String, String)],
    errors: &mut Vec<ConfigError>,
) {
    for (key, text) in overrides {
        let label = format!("override {key}");
        match parse_key(key) {
            Ok(path) => apply(layered, path, text, label, errors),
            Err(message) => errors.push(ConfigError::new(key, message)),
        }
    }
}

/// Parses `models[0].window_size`, `models.0.window_size` or
/// `kafka.properties."sasl.password"`.
pub fn parse_key(key: &str) -> Result<KeyPath, String> {
    let mut segments = Vec::new();
    let mut rest = key;
    loop {
        let (segment, tail) = split_segment(rest)?;
        segments.push(segment);
        let tail = take_indices(tail, &mut segments)?;
        match tail.strip_prefix('.') {
            Some(next) => rest = next,
            None if tail.is_empty() => return Ok(KeyPath(segments)),
            None => return Err(format!("unexpected {tail:?} in key")),
        }
    }
}

fn split_segment(text: &str) -> Result<(Segment, &str), String> {
    if let Some(quoted) = text.strip_prefix('"') {
        let end = quoted.find('"').ok_or("unterminated quoted key")?;
        return Ok((Segment::Key(quoted[..end].to_owned()), &quoted[end + 1..]));
    }
    let end = text.find(['.', '[']).unwrap_or(text.len());
    if end == 0 {
        return Err("empty key segment".to_owned());
    }
    Ok((segment_from_word(text[..end].to_owned()), &text[end..]))
}

fn take_indices<'a>(mut text: &'a str, segments: &mut Vec<Segment>) -> Result<&'a str, String> {
    while let Some(inner) = text.strip_prefix('[') {
        let end = inner.find(']').ok_or("unterminated index")?;
        let index = inner[..end]
            .parse()
            .map_err(|_| format!("bad index {:?}", &inner[..end]))?;
        segments.push(Segment::Index(index));
        text = &inner[end + 1..];
    }
    Ok(text)
}

fn apply(
    layered: &mut Layered,
    path: KeyPath,
    text: &str,
    label: String,
    errors: &mut Vec<ConfigError>,
) {
    let key = path.to_string();
    let origin = Origin {
        label,
        text: text.to_owned(),
    };
    match set(&mut layered.doc, &path.0, typed_value(text)) {
        Ok(()) => {
            layered.provenance.0.insert(key, origin);
        }
        Err(message) => {
            errors.push(ConfigError::new(
                key,
                format!("{message} (from {})", origin.label),
            ));
        }
    }
}

/// The value `text` denotes in TOML, or the text itself as a string.
fn typed_value(text: &str) -> Value {
    text.parse::<Value>()
        .unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Sets `value` at `path` under `table`, creating tables and arrays on the
/// way; an index may address an existing element or append one.
fn set(table: &mut Table, path: &[Segment], value: Value) -> Result<(), String> {
    let Some((Segment::Key(key), rest)) = path.split_first() else {
        return Err("a key path must start with a key".to_owned());
    };
    let slot = table.entry(key.clone());
    let node = slot.or_insert_with(|| empty_like(rest.first()));
    set_in(node, rest, value)
}

fn set_in(node: &mut Value, path: &[Segment], value: Value) -> Result<(), String> {
    let Some(first) = path.first() else {
        merge(node, value);
        return Ok(());
    };
    match (node, first) {
        (Value::Table(table), Segment::Key(_)) => set(table, path, value),
        (Value::Array(items), Segment::Index(i)) => {
            if *i == items.len() {
                items.push(empty_like(path.get(1)));
            }
            let len = items.len();
            let item = items
                .get_mut(*i)
                .ok_or_else(|| format!("index {i} is past the end (the array has {len})"))?;
            set_in(item, &path[1..], value)
        }
        (Value::Table(_), Segment::Index(i)) => Err(format!("[{i}] indexes a table")),
        (other, _) => Err(format!("cannot descend into a {}", other.type_str())),
    }
}

fn empty_like(next: Option<&Segment>) -> Value {
    match next {
        Some(Segment::Index(_)) => Value::Array(Vec::new()),
        _ => Value::Table(Table::new()),
    }
}

/// Replaces `node` with `value`, except that a table merges key by key into
/// a table.
fn merge(node: &mut Value, value: Value) {
    match (node, value) {
        (Value::Table(base), Value::Table(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (node, value) => *node = value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        parse_key(text).map(|p| p.to_string()).unwrap_or_else(|e| e)
    }

    #[test]
    fn override_keys_parse_and_display_alike() {
        assert_eq!(key("models[1].baseline"), "models[1].baseline");
        assert_eq!(key("models.1.baseline"), "models[1].baseline");
        assert_eq!(
            key("kafka.properties.\"sasl.password\""),
            "kafka.properties.\"sasl.password\""
        );
        assert_eq!(key("a..b"), "empty key segment");
    }

    #[test]
    fn env_names_map_to_keys() {
        let map = |n: &str| env_key(n).map(|p| p.to_string()).unwrap_or_else(|e| e);

        assert_eq!(
            map("DRIFTWARDEN_KAFKA__BOOTSTRAP_SERVERS"),
            "kafka.bootstrap_servers"
        );
        assert_eq!(
            map("DRIFTWARDEN_KAFKA__PROPERTIES__SASL_PASSWORD"),
            "kafka.properties.\"sasl.password\""
        );
        assert_eq!(
            map("DRIFTWARDEN_CHANNELS__WEBHOOK__HEADERS__X_API_KEY"),
            "channels.webhook.headers.x-api-key"
        );
        assert_eq!(map("DRIFTWARDEN_MODELS__0__NAME"), "models[0].name");
        assert!(!is_config_var("DRIFTWARDEN_CONFIG"));
    }

    #[test]
    fn values_are_typed_by_toml_grammar() {
        assert_eq!(typed_value("500"), Value::Integer(500));
        assert_eq!(
            typed_value("[\"a\", \"b\"]").as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            typed_value("10.0.0.1:9092"),
            Value::String("10.0.0.1:9092".into())
        );
    }

    #[test]
    fn indices_append_or_address_elements() {
        let mut doc = Table::new();
        let path = |t: &str| parse_key(t).unwrap().0;

        set(&mut doc, &path("models[0].name"), Value::from("a")).unwrap();
        set(&mut doc, &path("models[0].baseline"), Value::from("a.json")).unwrap();
        let past_end = set(&mut doc, &path("models[2].name"), Value::from("c"));

        assert_eq!(doc["models"][0]["baseline"].as_str(), Some("a.json"));
        assert!(past_end.unwrap_err().contains("past the end"));
    }
}
