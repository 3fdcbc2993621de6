//! Turning the merged document into [`RawConfig`] while reporting *every*
//! key serde rejects, not just the first.
//!
//! serde stops at the first error and does not say where it was. So when
//! the whole document fails, each key is tried on its own: a probe document
//! holding only that key (everything else takes its default) is
//! deserialized, and a failing probe names the key exactly. Containers are
//! probed empty first (is the key itself known and of the right kind?) and
//! then descended into, so a bad `alerts.retry.jitter` or
//! `models[2].window_size` is named down to the leaf. Bad keys are removed
//! and the rest is deserialized, so validation still sees every good value.

use serde::Deserialize;
use toml::{Table, Value};

use super::ConfigError;
use super::layers::{KeyPath, Provenance, Segment};
use super::raw::RawConfig;

/// Deserializes `doc`, pushing one error per rejected key.
pub fn decode(doc: Table, provenance: &Provenance, errors: &mut Vec<ConfigError>) -> RawConfig {
    if let Ok(raw) = RawConfig::deserialize(doc.clone()) {
        return raw;
    }

    let mut doc = doc;
    let mut repair = Repair { provenance, errors };
    repair.table(&mut doc, &KeyPath::default());

    RawConfig::deserialize(doc).unwrap_or_else(|e| {
        // Not expected: every key that failed alone has been removed. Still
        // reported rather than hidden.
        let message = clean_message(e.message());
        repair.errors.push(ConfigError::new("(document)", message));
        RawConfig::default()
    })
}

struct Repair<'a> {
    provenance: &'a Provenance,
    errors: &'a mut Vec<ConfigError>,
}

impl Repair<'_> {
    /// Checks every child of the container `node` at `path`, removing the
    /// ones that cannot be repaired.
    fn children(&mut self, node: &mut Value, path: &KeyPath) {
        match node {
            Value::Table(table) => self.table(table, path),
            Value::Array(items) => self.array(items, path),
            _ => {}
        }
    }

    fn table(&mut self, table: &mut Table, path: &KeyPath) {
        let keys: Vec<String> = table.keys().cloned().collect();
        for key in keys {
            let child = path.child(Segment::Key(key.clone()));
            if let Some(value) = table.get_mut(&key)
                && !self.check(value, &child)
            {
                table.remove(&key);
            }
        }
    }

    fn array(&mut self, items: &mut Vec<Value>, path: &KeyPath) {
        let mut index = 0;
        items.retain_mut(|value| {
            let keep = self.check(value, &path.child(Segment::Index(index)));
            index += 1;
            keep
        });
    }

    /// Whether `value` at `path` is acceptable, possibly after repairing
    /// it; pushes an error when it is not.
    fn check(&mut self, value: &mut Value, path: &KeyPath) -> bool {
        let Err(message) = probe(path, value.clone()) else {
            return true;
        };

        if let Some(empty) = empty_container(value)
            && probe(path, empty).is_ok()
        {
            self.children(value, path);
            if probe(path, value.clone()).is_ok() {
                return true;
            }
        } else if let Some(text) = self.text_fallback(path, value) {
            *value = text;
            return true;
        }

        self.errors
            .push(ConfigError::new(path.to_string(), message));
        false
    }

    /// An environment or override value that TOML typed as a number, bool
    /// or date may have been meant as a string (`group_id=123`).
    fn text_fallback(&self, path: &KeyPath, value: &Value) -> Option<Value> {
        let origin = self.provenance.exact(&path.to_string())?;
        let text = Value::String(origin.text.clone());
        (!value.is_str() && probe(path, text.clone()).is_ok()).then_some(text)
    }
}

fn empty_container(value: &Value) -> Option<Value> {
    match value {
        Value::Table(_) => Some(Value::Table(Table::new())),
        Value::Array(_) => Some(Value::Array(Vec::new())),
        _ => None,
    }
}

/// Deserializes a document holding only `value` at `path`.
fn probe(path: &KeyPath, value: Value) -> Result<(), String> {
    let mut node = value;
    for segment in path.0.iter().rev() {
        node = match segment {
            Segment::Key(key) => Value::Table(Table::from_iter([(key.clone(), node)])),
            Segment::Index(_) => Value::Array(vec![node]),
        };
    }
    RawConfig::deserialize(node)
        .map(drop)
        .map_err(|e| clean_message(e.message()))
}

/// serde's wording, adjusted to the file's vocabulary: "field" → "key".
fn clean_message(message: &str) -> String {
    let message = message.trim_end();
    match message.strip_prefix("unknown field ") {
        Some(rest) => format!("unknown key {rest}"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_errors(text: &str) -> Vec<String> {
        let doc: Table = text.parse().unwrap();
        let mut errors = Vec::new();
        decode(doc, &Provenance::default(), &mut errors);
        errors.iter().map(|e| e.key.clone()).collect()
    }

    #[test]
    fn every_rejected_key_is_named_down_to_the_leaf() {
        let text = r#"
            [monitor]
            window_size = "big"
            windw = 3
            [alerts.retry]
            jitter = "some"
            [kafka]
            prediction_topics = ["a", 7]
            [monitr]
            x = 1
            [[models]]
            name = "a"
            [[models]]
            name = "b"
            window_size = -4
        "#;

        let keys = decode_errors(text);

        assert_eq!(
            keys,
            [
                "alerts.retry.jitter",
                "kafka.prediction_topics[1]",
                "models[1].window_size",
                "monitor.window_size",
                "monitor.windw",
                "monitr",
            ]
        );
    }

    #[test]
    fn good_values_survive_a_bad_neighbour() {
        let doc: Table = "[monitor]\nwindow_size = 'x'\nmin_window = 7"
            .parse()
            .unwrap();
        let mut errors = Vec::new();

        let raw = decode(doc, &Provenance::default(), &mut errors);

        assert_eq!(raw.monitor.min_window, 7);
        assert_eq!(errors.len(), 1);
    }
}
