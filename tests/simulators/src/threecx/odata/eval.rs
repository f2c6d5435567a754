//! Evaluating a parsed `$filter` against a JSON row.
//!
//! Three-valued: a comparison on a missing or mistyped field is *unknown*;
//! `and`/`or`/`not` propagate unknown as SQL does, and a row whose filter is
//! unknown does not match. A present `null` follows OData: `eq null` is true,
//! `ne <value>` is true, ordering comparisons are false.

use chrono::DateTime;
use serde_json::Value;

use super::Kind;
use super::filter::{CmpOp, Expr, Literal};
use crate::threecx::duration::parse_duration_secs;

impl Expr {
    /// Whether `row` satisfies the filter (unknown counts as no).
    pub fn matches(&self, row: &Value) -> bool {
        self.eval(row) == Some(true)
    }

    fn eval(&self, row: &Value) -> Option<bool> {
        match self {
            Expr::And(a, b) => match (a.eval(row), b.eval(row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval(row), b.eval(row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.eval(row).map(|v| !v),
            Expr::Cmp {
                field,
                kind,
                op,
                lit,
            } => compare(row.get(field.as_str())?, *kind, *op, lit),
        }
    }
}

/// Compares a present field value with a literal. `None` if the value has
/// the wrong type for the field (a malformed row).
fn compare(value: &Value, kind: Kind, op: CmpOp, lit: &Literal) -> Option<bool> {
    match (value.is_null(), lit == &Literal::Null) {
        (true, true) => return Some(op == CmpOp::Eq),
        (true, false) | (false, true) => return Some(op == CmpOp::Ne),
        (false, false) => {}
    }
    let ord = match (kind, lit) {
        (Kind::Number, Literal::Int(n)) => match value.as_i64() {
            Some(v) => v.cmp(n),
            None => value.as_f64()?.partial_cmp(&(*n as f64))?,
        },
        (Kind::Number, Literal::Dec(n)) => value.as_f64()?.partial_cmp(n)?,
        (Kind::String, Literal::Str(s)) => value.as_str()?.cmp(s.as_str()),
        (Kind::Bool, Literal::Bool(b)) => value.as_bool()?.cmp(b),
        (Kind::DateTime, Literal::DateTime(t)) => {
            DateTime::parse_from_rfc3339(value.as_str()?).ok()?.cmp(t)
        }
        (Kind::Duration, Literal::Duration(d)) => {
            parse_duration_secs(value.as_str()?)?.partial_cmp(d)?
        }
        _ => return None,
    };
    Some(op.holds(ord))
}
