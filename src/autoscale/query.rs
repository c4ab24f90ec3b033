//! A tiny PromQL evaluator for the queries our ScaledObjects use, over series the caller
//! supplies: `max|min|sum|avg|count(<selector>)` or a bare selector, with `=` and `!=`
//! label matchers. Anything else is refused, naming what and where.

use std::collections::BTreeMap;

use super::reading::Reading;

/// One series: a metric name, its labels and its current value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric name (`coordinator_queue_depth`).
    pub name: String,
    /// Its labels (without `__name__`).
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Series {
    /// `name{labels} value`.
    pub fn new(name: impl Into<String>, labels: &[(&str, &str)], value: f64) -> Self {
        Self {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
        }
    }

    fn label(&self, label: &str) -> &str {
        match label {
            "__name__" => &self.name,
            _ => self.labels.get(label).map_or("", String::as_str),
        }
    }
}

/// One element of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels: the series' (with `__name__`) for a bare selector, none for an aggregation.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// An aggregation over every selected series (no `by`/`without`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// `sum`.
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `avg`.
    Avg,
    /// `count`.
    Count,
}

/// `label="value"` or `label!="value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The label (`__name__` for the metric name).
    pub label: String,
    /// `=` (true) or `!=` (false).
    pub equal: bool,
    /// The value.
    pub value: String,
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        (self.value == value) == self.equal
    }
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The aggregation, if any.
    pub aggregation: Option<Aggregation>,
    /// Every matcher, the metric name as `__name__="..."`.
    pub matchers: Vec<Matcher>,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Valid PromQL, perhaps, but beyond the subset the model evaluates.
    #[error(
        "unsupported PromQL at byte {at}: {what} (the model evaluates max, min, sum, avg or \
         count over one selector with = and != matchers)"
    )]
    Unsupported {
        /// Byte offset in the query.
        at: usize,
        /// What was found there.
        what: String,
    },
    /// Not PromQL.
    #[error("malformed PromQL at byte {at}: {what}")]
    Malformed {
        /// Byte offset in the query.
        at: usize,
        /// What is wrong.
        what: String,
    },
}

impl Query {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let mut p = Parser { text, at: 0 };
        p.skip_ws();
        let start = p.at;
        let ident = p.identifier();
        p.skip_ws();
        let (aggregation, matchers) = match (ident, p.peek()) {
            (Some(name), Some('(')) => {
                let aggregation = aggregation(name)
                    .ok_or_else(|| p.unsupported_at(start, format!("function {name}()")))?;
                p.at += 1;
                p.skip_ws();
                let inner = p.at;
                let metric = p.identifier();
                let matchers = p.selector(inner, metric)?;
                p.skip_ws();
                p.expect(')')?;
                (Some(aggregation), matchers)
            }
            (Some(name), Some(_))
                if aggregation(name).is_some() && p.rest().starts_with(['b', 'w']) =>
            {
                return Err(p.unsupported("grouping (by/without)"));
            }
            (metric, _) => (None, p.selector(start, metric)?),
        };
        p.skip_ws();
        match p.peek() {
            None => Ok(Self {
                aggregation,
                matchers,
            }),
            Some('[') => Err(p.unsupported("a range selector")),
            Some(_) => Err(p.unsupported(format!("{:?}", p.rest()))),
        }
    }

    /// The query's result over `series`, as Prometheus would answer it.
    pub fn eval(&self, series: &[Series]) -> Vec<Sample> {
        let selected = series
            .iter()
            .filter(|s| self.matchers.iter().all(|m| m.matches(s.label(&m.label))));
        let Some(aggregation) = self.aggregation else {
            return selected
                .map(|s| {
                    let mut labels = s.labels.clone();
                    labels.insert("__name__".into(), s.name.clone());
                    Sample {
                        labels,
                        value: s.value,
                    }
                })
                .collect();
        };
        let values: Vec<f64> = selected.map(|s| s.value).collect();
        if values.is_empty() {
            // An aggregation over nothing is an empty result, not 0.
            return Vec::new();
        }
        let n = values.len() as f64;
        // Like Prometheus, min and max skip NaN unless every value is NaN.
        let extreme = |pick: fn(f64, f64) -> f64| {
            values.iter().copied().reduce(|a, b| {
                if a.is_nan() {
                    b
                } else if b.is_nan() {
                    a
                } else {
                    pick(a, b)
                }
            })
        };
        let value = match aggregation {
            Aggregation::Sum => values.iter().sum(),
            Aggregation::Avg => values.iter().sum::<f64>() / n,
            Aggregation::Count => n,
            Aggregation::Min => extreme(f64::min).unwrap_or(f64::NAN),
            Aggregation::Max => extreme(f64::max).unwrap_or(f64::NAN),
        };
        vec![Sample {
            labels: BTreeMap::new(),
            value,
        }]
    }

    /// What KEDA's Prometheus scaler reads from the result: no series is an empty answer,
    /// one its value, more than one a failure ("returned multiple elements").
    pub fn reading(&self, series: &[Series]) -> Reading {
        match self.eval(series).as_slice() {
            [] => Reading::Empty,
            [one] => Reading::Value(one.value),
            _ => Reading::Failed,
        }
    }
}

fn aggregation(name: &str) -> Option<Aggregation> {
    Some(match name {
        "sum" => Aggregation::Sum,
        "min" => Aggregation::Min,
        "max" => Aggregation::Max,
        "avg" => Aggregation::Avg,
        "count" => Aggregation::Count,
        _ => return None,
    })
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.at..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn unsupported(&self, what: impl Into<String>) -> QueryError {
        self.unsupported_at(self.at, what)
    }

    fn unsupported_at(&self, at: usize, what: impl Into<String>) -> QueryError {
        QueryError::Unsupported {
            at,
            what: what.into(),
        }
    }

    fn malformed(&self, what: impl Into<String>) -> QueryError {
        QueryError::Malformed {
            at: self.at,
            what: what.into(),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), QueryError> {
        match self.peek() {
            Some(found) if found == c => {
                self.at += c.len_utf8();
                Ok(())
            }
            Some(found) => Err(self.malformed(format!("expected {c:?}, found {found:?}"))),
            None => Err(self.malformed(format!("expected {c:?}, found the end"))),
        }
    }

    /// A metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), if one starts here.
    fn identifier(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
            })
            .map_or(rest.len(), |(i, _)| i);
        self.at += len;
        (len > 0).then(|| &rest[..len])
    }

    /// `metric{matchers}`, `metric` or `{matchers}`, the metric already read.
    fn selector(&mut self, start: usize, metric: Option<&str>) -> Result<Vec<Matcher>, QueryError> {
        let mut matchers: Vec<Matcher> = metric
            .map(|m| Matcher {
                label: "__name__".into(),
                equal: true,
                value: m.to_owned(),
            })
            .into_iter()
            .collect();
        self.skip_ws();
        if self.peek() == Some('{') {
            self.at += 1;
            loop {
                self.skip_ws();
                if self.peek() == Some('}') {
                    self.at += 1;
                    break;
                }
                let label = self
                    .identifier()
                    .ok_or_else(|| self.malformed("expected a label name"))?
                    .to_owned();
                self.skip_ws();
                let equal = match (self.peek(), self.rest().chars().nth(1)) {
                    (Some('='), Some('~')) | (Some('!'), Some('~')) => {
                        return Err(self.unsupported("a regex matcher"));
                    }
                    (Some('='), _) => {
                        self.at += 1;
                        true
                    }
                    (Some('!'), Some('=')) => {
                        self.at += 2;
                        false
                    }
                    _ => return Err(self.malformed(format!("expected = or != after {label}"))),
                };
                self.skip_ws();
                let value = self.string()?;
                matchers.push(Matcher {
                    label,
                    equal,
                    value,
                });
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.at += 1,
                    Some('}') => {}
                    _ => return Err(self.malformed("expected , or } in the matchers")),
                }
            }
        }
        // Prometheus refuses a selector that would match every series.
        if !matchers.iter().any(|m| !m.matches("")) {
            return Err(QueryError::Malformed {
                at: start,
                what: "a selector needs a metric name or a matcher that does not match the empty string".into(),
            });
        }
        Ok(matchers)
    }

    /// A double- or single-quoted string with `\\`, `\"`, `\'`, `\n`, `\t` escapes.
    fn string(&mut self) -> Result<String, QueryError> {
        let quote = match self.peek() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(self.malformed("expected a quoted label value")),
        };
        self.at += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, e @ ('\\' | '"' | '\''))) => value.push(e),
                    _ => return Err(self.malformed("an escape the model does not read")),
                },
                c if c == quote => {
                    self.at += i + 1;
                    return Ok(value);
                }
                c => value.push(c),
            }
        }
        Err(self.malformed("unterminated string"))
    }
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
