//! Prediction events: decoding and validation.
//!
//! One Kafka message holds one JSON event object, or a JSON array of them.
//! Features are decoded straight into the model's [`FeatureLayout`] (the
//! baseline's feature order) — no map is built per event. A message that
//! cannot be decoded is never fatal: decoding returns a [`DecodeError`] whose
//! [`reason`](DecodeError::reason) is a bounded label for counters.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::baseline::{Baseline, Distribution};

/// Why an event (or a whole message) was set aside.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    /// The message is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON, or not the event schema.
    #[error("invalid JSON: {detail}")]
    InvalidJson {
        /// serde_json's message (line and column).
        detail: String,
    },
    /// JSON, but not an object (or array of objects).
    #[error("event is not a JSON object")]
    NotAnObject,
    /// The required `model` field is absent or empty.
    #[error("event has no model")]
    MissingModel,
    /// No baseline is loaded for this model.
    #[error("no baseline for model {model:?}")]
    UnknownModel {
        /// The model named by the event.
        model: String,
    },
    /// A feature (or the prediction) has a value of the wrong kind.
    #[error("{field}: expected {expected}, found {found}")]
    WrongType {
        /// Feature name, or `prediction`.
        field: String,
        /// What the baseline says it should be.
        expected: &'static str,
        /// What the event holds.
        found: &'static str,
    },
    /// The timestamp is neither RFC 3339 nor epoch milliseconds.
    #[error("timestamp {value:?} is neither RFC 3339 nor epoch milliseconds")]
    BadTimestamp {
        /// The offending value, shortened.
        value: String,
    },
    /// A label event without the id that joins it to its prediction.
    #[error("label event has no id")]
    MissingId,
    /// A label event without a label (absent or null).
    #[error("label event has no label")]
    MissingLabel,
}

impl DecodeError {
    /// A bounded label for metrics and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::InvalidJson { .. } => "invalid_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::MissingModel => "missing_model",
            DecodeError::UnknownModel { .. } => "unknown_model",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::BadTimestamp { .. } => "bad_timestamp",
            DecodeError::MissingId => "missing_id",
            DecodeError::MissingLabel => "missing_label",
        }
    }
}

/// The kind of one feature in a model's layout.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureKind {
    /// A number.
    Numeric,
    /// A category; the map gives each baseline category its index. Values
    /// not in the map decode to [`Value::UnknownCategory`].
    Categorical(HashMap<String, u32>),
}

impl FeatureKind {
    fn from_distribution(distribution: &Distribution) -> FeatureKind {
        match distribution {
            Distribution::Numeric { .. } => FeatureKind::Numeric,
            Distribution::Categorical { counts } => FeatureKind::Categorical(
                counts
                    .keys()
                    .enumerate()
                    .map(|(i, k)| (k.clone(), i as u32))
                    .collect(),
            ),
        }
    }
}

/// One decoded value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Null or absent.
    Missing,
    /// A finite number.
    Number(f64),
    /// A baseline category, by index.
    Category(u32),
    /// A category the baseline never saw.
    UnknownCategory,
}

/// A label: a class or a regression target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Label {
    /// A regression target (or a numeric class id).
    Number(f64),
    /// A class name.
    Class(String),
}

/// The decoding plan of one model: feature order, kinds and category
/// indices, built once from its baseline.
#[derive(Debug, Clone)]
pub struct FeatureLayout {
    names: Vec<String>,
    index: HashMap<String, usize>,
    kinds: Vec<FeatureKind>,
    prediction: Option<FeatureKind>,
}

impl FeatureLayout {
    /// The layout defined by a baseline.
    pub fn from_baseline(baseline: &Baseline) -> FeatureLayout {
        let names: Vec<String> = baseline.features.iter().map(|f| f.name.clone()).collect();
        FeatureLayout {
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            kinds: baseline
                .features
                .iter()
                .map(|f| FeatureKind::from_distribution(&f.distribution))
                .collect(),
            prediction: baseline
                .prediction
                .as_ref()
                .map(FeatureKind::from_distribution),
            names,
        }
    }

    /// Feature names in layout order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the model has no features.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A decoded, validated prediction event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Model id.
    pub model: String,
    /// Model version, if given.
    pub model_version: Option<String>,
    /// Request id, used to join late labels.
    pub id: Option<String>,
    /// Event time, ms since the epoch.
    pub timestamp_ms: i64,
    /// One value per feature, in layout order.
    pub values: Vec<Value>,
    /// The prediction, decoded against the baseline's prediction kind.
    pub prediction: Value,
    /// The true label, when it came with the prediction.
    pub label: Option<Label>,
}

/// The envelope's fields, borrowed from the message. `features` is decoded
/// straight into the layout in the same pass when `model` came before it
/// (as producers usually write it); otherwise it is kept raw and decoded
/// once the model, and so the layout, is known.
#[derive(Default)]
struct Envelope<'a, 'l> {
    model: Option<Cow<'a, str>>,
    model_version: Option<Cow<'a, str>>,
    id: Option<Cow<'a, str>>,
    timestamp: Option<&'a RawValue>,
    features: Option<Features<'a, 'l>>,
    prediction: Option<&'a RawValue>,
    label: Option<&'a RawValue>,
}

/// The `features` field: decoded in the envelope's pass (with the layout
/// it was decoded against), or raw.
enum Features<'a, 'l> {
    Decoded(Result<Vec<Value>, DecodeError>, &'l FeatureLayout),
    Raw(&'a RawValue),
}

/// Deserializes an [`Envelope`], looking the layout up as soon as the model
/// is known.
struct EnvelopeSeed<'f, 'l> {
    layouts: &'f dyn Fn(&str, Option<&str>) -> Option<&'l FeatureLayout>,
    /// Keep `features` raw whatever comes before it (the second pass for an
    /// event whose `model_version`, read after its features, selects
    /// another layout).
    raw_features: bool,
}

impl<'de, 'l> DeserializeSeed<'de> for EnvelopeSeed<'_, 'l> {
    type Value = Envelope<'de, 'l>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Stores a field's value, rejecting a second occurrence as serde's derive
/// does.
fn set_once<T, E: serde::de::Error>(
    slot: &mut Option<T>,
    seen: &mut bool,
    name: &'static str,
    value: Option<T>,
) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::duplicate_field(name));
    }
    *slot = value;
    Ok(())
}

impl<'de, 'l> Visitor<'de> for EnvelopeSeed<'_, 'l> {
    type Value = Envelope<'de, 'l>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        let mut seen = [false; 7];
        while let Some(CowStr(key)) = map.next_key()? {
            match key.as_ref() {
                "model" => {
                    let value = map.next_value::<Option<CowStr>>()?.map(|v| v.0);
                    set_once(&mut envelope.model, &mut seen[0], "model", value)?;
                }
                "model_version" => {
                    let value = map.next_value::<Option<CowStr>>()?.map(|v| v.0);
                    set_once(
                        &mut envelope.model_version,
                        &mut seen[1],
                        "model_version",
                        value,
                    )?;
                }
                "id" => {
                    let value = map.next_value::<Option<CowStr>>()?.map(|v| v.0);
                    set_once(&mut envelope.id, &mut seen[2], "id", value)?;
                }
                "timestamp" => {
                    let value = map.next_value()?;
                    set_once(&mut envelope.timestamp, &mut seen[3], "timestamp", value)?;
                }
                "features" => {
                    let version = envelope.model_version.as_deref();
                    let layout = envelope
                        .model
                        .as_deref()
                        .filter(|_| !self.raw_features)
                        .and_then(|m| (self.layouts)(m, version));
                    let value = match layout {
                        Some(layout) => map
                            .next_value_seed(OptionalFeatures(FeaturesSeed { layout }))?
                            .map(|values| Features::Decoded(values, layout)),
                        None => map.next_value::<Option<&RawValue>>()?.map(Features::Raw),
                    };
                    set_once(&mut envelope.features, &mut seen[4], "features", value)?;
                }
                "prediction" => {
                    let value = map.next_value()?;
                    set_once(&mut envelope.prediction, &mut seen[5], "prediction", value)?;
                }
                "label" => {
                    let value = map.next_value()?;
                    set_once(&mut envelope.label, &mut seen[6], "label", value)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// A string borrowed from the message when it has no escapes, owned
/// otherwise. serde's own `Cow<str>` always copies, and keys and ids are
/// read for every event.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CowStrVisitor)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = CowStr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Owned(v.to_owned())))
    }
}

/// `features: null` reads as absent, as `Option` does.
struct OptionalFeatures<'l>(FeaturesSeed<'l>);

impl<'de> DeserializeSeed<'de> for OptionalFeatures<'_> {
    type Value = Option<Result<Vec<Value>, DecodeError>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalFeatures<'_> {
    type Value = Option<Result<Vec<Value>, DecodeError>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of features or null")
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// Decodes one Kafka message into events. A message holding an array yields
/// one result per element, so one bad element does not spoil the others.
pub fn decode_message<'l>(
    payload: &[u8],
    message_time_ms: i64,
    max_bytes: usize,
    layouts: &dyn Fn(&str, Option<&str>) -> Option<&'l FeatureLayout>,
) -> Vec<Result<Event, DecodeError>> {
    if payload.len() > max_bytes {
        return vec![Err(DecodeError::TooLarge {
            size: payload.len(),
            limit: max_bytes,
        })];
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        match serde_json::from_slice::<Vec<&RawValue>>(payload) {
            Ok(items) => items
                .into_iter()
                .map(|raw| decode_event(raw.get().as_bytes(), message_time_ms, layouts))
                .collect(),
            Err(e) => vec![Err(invalid_json(&e))],
        }
    } else {
        vec![decode_event(payload, message_time_ms, layouts)]
    }
}

/// Decodes one event object.
pub fn decode_event<'l>(
    bytes: &[u8],
    message_time_ms: i64,
    layouts: &dyn Fn(&str, Option<&str>) -> Option<&'l FeatureLayout>,
) -> Result<Event, DecodeError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Distinguish valid-but-not-an-object from garbage for the counters.
        return match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => Err(DecodeError::NotAnObject),
            Err(e) => Err(invalid_json(&e)),
        };
    }
    let parse = |raw_features| {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        EnvelopeSeed {
            layouts,
            raw_features,
        }
        .deserialize(&mut de)
        .and_then(|envelope| de.end().map(|()| envelope))
        .map_err(|e| invalid_json(&e))
    };
    let mut envelope = parse(false)?;
    let model = match envelope.model {
        Some(m) if !m.is_empty() => m,
        _ => return Err(DecodeError::MissingModel),
    };
    // The version picks the layout: a version with its own baseline may
    // have features the default baseline lacks.
    let layout = layouts(&model, envelope.model_version.as_deref()).ok_or_else(|| {
        DecodeError::UnknownModel {
            model: model.to_string(),
        }
    })?;
    // Features decoded in the first pass against another layout (their
    // `model_version` came after them and selects a version with its own
    // baseline): read them again, raw this time. Rare, and exact.
    if let Some(Features::Decoded(_, used)) = &envelope.features
        && !std::ptr::eq(*used, layout)
    {
        let again = parse(true)?;
        envelope.features = again.features;
    }
    let timestamp_ms = match envelope.timestamp {
        Some(raw) => parse_timestamp(raw)?.unwrap_or(message_time_ms),
        None => message_time_ms,
    };
    let values = match envelope.features {
        Some(Features::Decoded(values, _)) => values?,
        Some(Features::Raw(raw)) => decode_features(raw, layout)?,
        None => vec![Value::Missing; layout.len()],
    };
    let prediction = match (envelope.prediction, &layout.prediction) {
        (Some(raw), Some(kind)) => decode_value("prediction", parse_scalar(raw)?, kind)?,
        _ => Value::Missing,
    };
    let label = envelope.label.map(parse_label).transpose()?.flatten();
    Ok(Event {
        model: model.into_owned(),
        model_version: envelope.model_version.map(Cow::into_owned),
        id: envelope.id.map(Cow::into_owned),
        timestamp_ms,
        values,
        prediction,
        label,
    })
}

/// A decoded label event: the ground truth for one earlier (or later)
/// prediction, joined to it by (model, id).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEvent {
    /// Model id.
    pub model: String,
    /// Model version of the prediction, when the sender knows it: it picks
    /// the version's monitor directly (see [`crate::monitor::Monitor::apply_label`]).
    pub model_version: Option<String>,
    /// Request id of the prediction this label belongs to.
    pub id: String,
    /// The true label.
    pub label: Label,
    /// Event time of the label, ms since the epoch.
    pub timestamp_ms: i64,
}

#[derive(Deserialize)]
struct LabelEnvelope<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    label: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// Decodes one message from a label topic: one label object
/// (`{"model", "id", "label", "timestamp"}`) or an array of them, one
/// result per element. Whether the model is monitored is the monitor's
/// call ([`crate::monitor::Monitor::apply_label`]).
pub fn decode_label_message(
    payload: &[u8],
    message_time_ms: i64,
    max_bytes: usize,
) -> Vec<Result<LabelEvent, DecodeError>> {
    if payload.len() > max_bytes {
        return vec![Err(DecodeError::TooLarge {
            size: payload.len(),
            limit: max_bytes,
        })];
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'[') {
        return vec![decode_label(payload, message_time_ms)];
    }
    match serde_json::from_slice::<Vec<&RawValue>>(payload) {
        Ok(items) => items
            .into_iter()
            .map(|raw| decode_label(raw.get().as_bytes(), message_time_ms))
            .collect(),
        Err(e) => vec![Err(invalid_json(&e))],
    }
}

fn decode_label(bytes: &[u8], message_time_ms: i64) -> Result<LabelEvent, DecodeError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => Err(DecodeError::NotAnObject),
            Err(e) => Err(invalid_json(&e)),
        };
    }
    let envelope: LabelEnvelope = serde_json::from_slice(bytes).map_err(|e| invalid_json(&e))?;
    let model = match envelope.model {
        Some(m) if !m.is_empty() => m.into_owned(),
        _ => return Err(DecodeError::MissingModel),
    };
    let id = match envelope.id {
        Some(id) if !id.is_empty() => id.into_owned(),
        _ => return Err(DecodeError::MissingId),
    };
    let label = match envelope.label {
        Some(raw) => parse_label(raw)?.ok_or(DecodeError::MissingLabel)?,
        None => return Err(DecodeError::MissingLabel),
    };
    let timestamp_ms = match envelope.timestamp {
        Some(raw) => parse_timestamp(raw)?.unwrap_or(message_time_ms),
        None => message_time_ms,
    };
    Ok(LabelEvent {
        model,
        model_version: envelope
            .model_version
            .filter(|v| !v.is_empty())
            .map(Cow::into_owned),
        id,
        label,
        timestamp_ms,
    })
}

fn invalid_json(e: &serde_json::Error) -> DecodeError {
    DecodeError::InvalidJson {
        detail: e.to_string(),
    }
}

/// A JSON scalar, borrowed where possible.
enum Scalar<'a> {
    Null,
    Number(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Compound(&'static str),
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Number(_) => "a number",
            Scalar::Str(_) => "a string",
            Scalar::Bool(_) => "a boolean",
            Scalar::Compound(kind) => kind,
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound("an object"))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

fn parse_scalar(raw: &RawValue) -> Result<Scalar<'_>, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|e| invalid_json(&e))
}

/// Decodes the `features` object into layout order; unknown names are
/// ignored (a model may log more than it is monitored on).
fn decode_features(raw: &RawValue, layout: &FeatureLayout) -> Result<Vec<Value>, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let outcome = FeaturesSeed { layout }.deserialize(&mut de);
    match outcome {
        Ok(result) => result,
        Err(e) => Err(invalid_json(&e)),
    }
}

struct FeaturesSeed<'l> {
    layout: &'l FeatureLayout,
}

impl<'de> DeserializeSeed<'de> for FeaturesSeed<'_> {
    type Value = Result<Vec<Value>, DecodeError>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_> {
    type Value = Result<Vec<Value>, DecodeError>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of features")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = vec![Value::Missing; self.layout.len()];
        let mut first_error = None;
        // Producers usually write features in one fixed order; guessing the
        // next layout position and comparing names skips hashing each one.
        let mut next = 0;
        while let Some(CowStr(name)) = map.next_key()? {
            let scalar: Scalar = map.next_value()?;
            let guess = self.layout.names.get(next).filter(|n| **n == name);
            let Some(i) = guess
                .map(|_| next)
                .or_else(|| self.layout.index.get(name.as_ref()).copied())
            else {
                continue;
            };
            next = i + 1;
            match decode_value(&name, scalar, &self.layout.kinds[i]) {
                Ok(v) => values[i] = v,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Ok(match first_error {
            Some(e) => Err(e),
            None => Ok(values),
        })
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Ok(vec![Value::Missing; self.layout.len()]))
    }
}

fn decode_value(field: &str, scalar: Scalar, kind: &FeatureKind) -> Result<Value, DecodeError> {
    let wrong = |expected, found| DecodeError::WrongType {
        field: field.to_string(),
        expected,
        found,
    };
    match (scalar, kind) {
        (Scalar::Null, _) => Ok(Value::Missing),
        (Scalar::Number(x), FeatureKind::Numeric) => Ok(Value::Number(x)),
        (Scalar::Bool(b), FeatureKind::Numeric) => Ok(Value::Number(if b { 1.0 } else { 0.0 })),
        (other, FeatureKind::Numeric) => Err(wrong("a number", other.kind())),
        (Scalar::Str(s), FeatureKind::Categorical(map)) => Ok(category(map, &s)),
        (Scalar::Bool(b), FeatureKind::Categorical(map)) => {
            Ok(category(map, if b { "true" } else { "false" }))
        }
        // Integer-coded categories ("zip": 12345) are common; Rust prints
        // whole floats without a fraction, matching how the builder stores them.
        (Scalar::Number(x), FeatureKind::Categorical(map)) => Ok(category(map, &x.to_string())),
        (other, FeatureKind::Categorical(_)) => Err(wrong("a category", other.kind())),
    }
}

fn category(map: &HashMap<String, u32>, name: &str) -> Value {
    map.get(name)
        .map_or(Value::UnknownCategory, |&i| Value::Category(i))
}

fn parse_timestamp(raw: &RawValue) -> Result<Option<i64>, DecodeError> {
    let bad = || DecodeError::BadTimestamp {
        value: raw.get().chars().take(40).collect(),
    };
    match parse_scalar(raw)? {
        Scalar::Null => Ok(None),
        Scalar::Number(ms) if ms.is_finite() && ms.abs() < 1e16 => Ok(Some(ms as i64)),
        Scalar::Str(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn parse_label(raw: &RawValue) -> Result<Option<Label>, DecodeError> {
    match parse_scalar(raw)? {
        Scalar::Null => Ok(None),
        Scalar::Number(x) => Ok(Some(Label::Number(x))),
        Scalar::Str(s) => Ok(Some(Label::Class(s.into_owned()))),
        Scalar::Bool(b) => Ok(Some(Label::Class(b.to_string()))),
        Scalar::Compound(found) => Err(DecodeError::WrongType {
            field: "label".into(),
            expected: "a number, string or boolean",
            found,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{FeatureBaseline, ReferenceMetrics, SourceFacts};
    use proptest::prelude::*;

    fn layout() -> FeatureLayout {
        let baseline = Baseline::new(Baseline {
            schema_version: 1,
            id: String::new(),
            model: "churn".into(),
            model_version: None,
            source: SourceFacts::default(),
            features: vec![
                FeatureBaseline {
                    name: "age".into(),
                    distribution: Distribution::Numeric {
                        values: vec![1.0, 2.0],
                        population: None,
                    },
                    missing: 0,
                },
                FeatureBaseline {
                    name: "plan".into(),
                    distribution: Distribution::Categorical {
                        counts: [
                            ("basic".to_string(), 1),
                            ("pro".to_string(), 1),
                            ("true".to_string(), 1),
                        ]
                        .into(),
                    },
                    missing: 0,
                },
            ],
            prediction: Some(Distribution::Numeric {
                values: vec![0.5],
                population: None,
            }),
            metrics: ReferenceMetrics::default(),
        })
        .unwrap();
        FeatureLayout::from_baseline(&baseline)
    }

    fn decode(json: &str) -> Vec<Result<Event, DecodeError>> {
        let l = layout();
        let lookup = |m: &str, _: Option<&str>| (m == "churn").then_some(&l);
        decode_message(json.as_bytes(), 7, 1 << 20, &lookup)
    }

    #[test]
    fn decodes_into_layout_order() {
        let out = decode(
            r#"{"features":{"plan":"pro","extra":[1],"age":42.5},"model":"churn","id":"r1",
               "timestamp":"2026-12-03T10:00:00.123Z","prediction":0.8,"label":1}"#,
        );
        let e = out[0].as_ref().unwrap();
        assert_eq!(e.values, vec![Value::Number(42.5), Value::Category(1)]);
        assert_eq!(e.timestamp_ms, 1_796_292_000_123);
        assert_eq!(e.prediction, Value::Number(0.8));
        assert_eq!(e.label, Some(Label::Number(1.0)));
        assert_eq!(e.id.as_deref(), Some("r1"));
    }

    /// A version with its own baseline has its own layout; the version
    /// may come before or after the features in the object.
    #[test]
    fn the_model_version_selects_the_layout_wherever_it_comes() {
        let default = layout();
        let mut v2 = layout();
        // The version's layout lists the features the other way round.
        v2.names.reverse();
        v2.kinds.reverse();
        v2.index = v2
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let lookup = |m: &str, v: Option<&str>| match (m, v) {
            ("churn", Some("v2")) => Some(&v2),
            ("churn", _) => Some(&default),
            _ => None,
        };
        for json in [
            r#"{"model":"churn","model_version":"v2","features":{"age":3,"plan":"pro"}}"#,
            r#"{"model":"churn","features":{"age":3,"plan":"pro"},"model_version":"v2"}"#,
            r#"{"features":{"age":3,"plan":"pro"},"model":"churn","model_version":"v2"}"#,
        ] {
            let e = decode_event(json.as_bytes(), 0, &lookup).unwrap();
            assert_eq!(
                e.values,
                vec![Value::Category(1), Value::Number(3.0)],
                "{json}"
            );
        }
        let other = r#"{"model":"churn","features":{"age":3,"plan":"pro"},"model_version":"v1"}"#;
        let e = decode_event(other.as_bytes(), 0, &lookup).unwrap();
        assert_eq!(e.values, vec![Value::Number(3.0), Value::Category(1)]);
    }

    #[test]
    fn defaults_and_kinds() {
        let out =
            decode(r#"{"model":"churn","features":{"plan":true,"age":null},"timestamp":1000}"#);
        let e = out[0].as_ref().unwrap();
        assert_eq!(e.values, vec![Value::Missing, Value::Category(2)]);
        assert_eq!(e.timestamp_ms, 1000);
        let out = decode(r#"{"model":"churn","features":{"plan":"enterprise"}}"#);
        let e = out[0].as_ref().unwrap();
        assert_eq!(e.values[1], Value::UnknownCategory);
        assert_eq!(e.timestamp_ms, 7, "falls back to the message time");
    }

    #[test]
    fn bad_input_is_classified() {
        let reason = |json: &str| decode(json)[0].as_ref().unwrap_err().reason();
        assert_eq!(reason("{not json"), "invalid_json");
        assert_eq!(reason("42"), "not_an_object");
        assert_eq!(reason(r#"{"features":{}}"#), "missing_model");
        assert_eq!(reason(r#"{"model":"fraud"}"#), "unknown_model");
        assert_eq!(
            reason(r#"{"model":"churn","features":{"age":"old"}}"#),
            "wrong_type"
        );
        assert_eq!(
            reason(r#"{"model":"churn","features":{"age":NaN}}"#),
            "invalid_json"
        );
        assert_eq!(
            reason(r#"{"model":"churn","features":{"age":1e999}}"#),
            "invalid_json"
        );
        assert_eq!(
            reason(r#"{"model":"churn","timestamp":"yesterday"}"#),
            "bad_timestamp"
        );
        let l = layout();
        let lookup = |m: &str, _: Option<&str>| (m == "churn").then_some(&l);
        let big = vec![b' '; 100];
        assert_eq!(
            decode_message(&big, 0, 10, &lookup)[0]
                .as_ref()
                .unwrap_err()
                .reason(),
            "too_large"
        );
    }

    #[test]
    fn array_with_one_bad_element_keeps_the_rest() {
        let out = decode(
            r#"[{"model":"churn","features":{"age":1}}, {"model":"churn","features":{"age":"x"}}, 3]"#,
        );
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().reason(), "wrong_type");
        assert_eq!(out[2].as_ref().unwrap_err().reason(), "not_an_object");
    }

    #[test]
    fn label_messages_decode_and_classify_errors() {
        let decode = |json: &str| decode_label_message(json.as_bytes(), 7, 1 << 20);
        let out = decode(
            r#"[{"model":"churn","id":"r1","label":"yes","timestamp":1000},
                             {"model":"churn","id":"r2","label":2.5}]"#,
        );
        let first = out[0].as_ref().unwrap();
        assert_eq!(first.label, Label::Class("yes".into()));
        assert_eq!((first.id.as_str(), first.timestamp_ms), ("r1", 1000));
        let second = out[1].as_ref().unwrap();
        assert_eq!(second.label, Label::Number(2.5));
        assert_eq!(second.timestamp_ms, 7, "falls back to the message time");

        let reason = |json: &str| decode(json)[0].as_ref().unwrap_err().reason();
        assert_eq!(reason(r#"{"id":"r1","label":1}"#), "missing_model");
        assert_eq!(reason(r#"{"model":"churn","label":1}"#), "missing_id");
        assert_eq!(
            reason(r#"{"model":"churn","id":"r1","label":null}"#),
            "missing_label"
        );
        assert_eq!(reason(r#"{"model":"churn","id":"r1"}"#), "missing_label");
        assert_eq!(
            reason(r#"{"model":"churn","id":"r1","label":[1]}"#),
            "wrong_type"
        );
        assert_eq!(reason("[1"), "invalid_json");
        assert_eq!(reason("true"), "not_an_object");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let l = layout();
            let lookup = |m: &str, _: Option<&str>| (m == "churn").then_some(&l);
            let _ = decode_message(&bytes, 0, 1 << 20, &lookup);
        }

        #[test]
        fn mutated_events_never_panic(cut in 0usize..120, byte in any::<u8>()) {
            let mut s = br#"{"model":"churn","features":{"age":3.5,"plan":"pro"},"timestamp":"2026-12-03T10:00:00Z"}"#.to_vec();
            let i = cut.min(s.len() - 1);
            s[i] = byte;
            let l = layout();
            let lookup = |m: &str, _: Option<&str>| (m == "churn").then_some(&l);
            let _ = decode_message(&s, 0, 1 << 20, &lookup);
        }
    }
}
