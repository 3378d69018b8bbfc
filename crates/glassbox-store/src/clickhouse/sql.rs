//! SQL assembled from `&'static str` fragments only; every value from a caller goes in as a
//! bound value (`Query::bind`, escaped by the crate), one per `?` of its fragment.

use clickhouse::Client;
use clickhouse::query::Query;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    I64(i64),
    U64(u64),
    Str(String),
    /// An array of strings (`IN ?`).
    StrList(Vec<String>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::I64(value)
    }
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Self::U64(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(super) fn new(fragment: &'static str) -> Self {
        let mut sql = Self::default();
        sql.push(fragment);
        sql
    }

    /// Appends a fragment without placeholders.
    pub(super) fn push(&mut self, fragment: &'static str) -> &mut Self {
        debug_assert!(!fragment.contains('?'), "a fragment with placeholders needs its values: {fragment}");
        self.text.push_str(fragment);
        self
    }

    /// Appends a fragment whose `?` placeholders take `values`, in order.
    pub(super) fn bind<const N: usize>(&mut self, fragment: &'static str, values: [Value; N]) -> &mut Self {
        debug_assert_eq!(fragment.matches('?').count(), N, "placeholders and values differ in: {fragment}");
        self.text.push_str(fragment);
        self.values.extend(values);
        self
    }

    pub(super) fn query(&self, client: &Client) -> Query {
        self.values.iter().fold(client.query(&self.text), |query, value| match value {
            Value::I64(value) => query.bind(*value),
            Value::U64(value) => query.bind(*value),
            Value::Str(value) => query.bind(value.as_str()),
            Value::StrList(values) => query.bind(values.as_slice()),
        })
    }

    #[cfg(test)]
    pub(super) fn text(&self) -> &str {
        &self.text
    }
}
