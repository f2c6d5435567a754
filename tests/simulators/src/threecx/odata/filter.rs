//! `$filter`: parsing into an [`Expr`] and evaluating it against a JSON row.
//!
//! Grammar (a subset of OData v4 ABNF):
//! ```text
//! or    := and ('or' and)*
//! and   := unary ('and' unary)*
//! unary := 'not' unary | '(' or ')' | Field (op literal)?
//! op    := eq | ne | gt | ge | lt | le
//! ```
//! A bare field is allowed only for booleans. Evaluation lives in `eval`.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};

use super::lexer::{Tok, Token, tokenize};
use super::{Kind, Schema};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }

    fn odata_name(self) -> &'static str {
        match self {
            Self::Eq => "Equal",
            Self::Ne => "NotEqual",
            Self::Gt => "GreaterThan",
            Self::Ge => "GreaterThanOrEqual",
            Self::Lt => "LessThan",
            Self::Le => "LessThanOrEqual",
        }
    }

    pub(super) fn holds(self, ord: Ordering) -> bool {
        match self {
            Self::Eq => ord == Ordering::Equal,
            Self::Ne => ord != Ordering::Equal,
            Self::Gt => ord == Ordering::Greater,
            Self::Ge => ord != Ordering::Less,
            Self::Lt => ord == Ordering::Less,
            Self::Le => ord != Ordering::Greater,
        }
    }
}

/// A literal on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(String),
    DateTime(DateTime<FixedOffset>),
    /// Seconds.
    Duration(f64),
}

impl Literal {
    fn edm_name(&self) -> &'static str {
        match self {
            Literal::Null => "null",
            Literal::Bool(_) => "Edm.Boolean",
            Literal::Int(_) => "Edm.Int32",
            Literal::Dec(_) => "Edm.Decimal",
            Literal::Str(_) => "Edm.String",
            Literal::DateTime(_) => "Edm.DateTimeOffset",
            Literal::Duration(_) => "Edm.Duration",
        }
    }

    fn fits(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (
                Literal::Null,
                Kind::Number | Kind::String | Kind::Bool | Kind::DateTime | Kind::Duration
            ) | (Literal::Int(_) | Literal::Dec(_), Kind::Number)
                | (Literal::Str(_), Kind::String)
                | (Literal::Bool(_), Kind::Bool)
                | (Literal::DateTime(_), Kind::DateTime)
                | (Literal::Duration(_), Kind::Duration)
        )
    }
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: String,
        kind: Kind,
        op: CmpOp,
        lit: Literal,
    },
}

/// Parses `text` against `schema`: unknown fields and incompatible literal
/// types are errors, as in ASP.NET Core OData.
pub(crate) fn parse_filter(text: &str, schema: &Schema) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        at: 0,
        schema,
    };
    let expr = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(t) => Err(parser.syntax_error(t.pos)),
    }
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    schema: &'a Schema,
}

impl Parser<'_> {
    fn syntax_error(&self, pos: usize) -> String {
        format!("Syntax error at position {pos} in '{}'.", self.text)
    }

    fn end_error(&self) -> String {
        self.syntax_error(self.text.len())
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token { tok: Tok::Word(w), .. }) if w == word)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        let token = self.next().ok_or_else(|| self.end_error())?;
        match token.tok {
            Tok::Word(w) if w == "not" => Ok(Expr::Not(Box::new(self.unary()?))),
            Tok::LParen => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => Ok(inner),
                    Some(t) => Err(self.syntax_error(t.pos)),
                    None => Err(format!(
                        "')' expected at position {} in '{}'.",
                        self.text.len(),
                        self.text
                    )),
                }
            }
            Tok::Word(field) if !is_keyword(&field) => self.comparison(field, token.pos),
            _ => Err(self.syntax_error(token.pos)),
        }
    }

    fn comparison(&mut self, field: String, pos: usize) -> Result<Expr, String> {
        if self
            .tokens
            .get(self.at)
            .is_some_and(|t| t.tok == Tok::LParen)
        {
            return Err(format!(
                "Unknown function '{field}' at position {pos} in '{}'.",
                self.text
            ));
        }
        let kind = self.schema.kind_of(&field)?;
        let op = match self.tokens.get(self.at) {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => CmpOp::from_word(w),
            _ => None,
        };
        let Some(op) = op else {
            // A bare boolean property is a complete predicate.
            if kind == Kind::Bool {
                let lit = Literal::Bool(true);
                return Ok(Expr::Cmp {
                    field,
                    kind,
                    op: CmpOp::Eq,
                    lit,
                });
            }
            return Err(match self.tokens.get(self.at) {
                Some(t) => self.syntax_error(t.pos),
                None => self.end_error(),
            });
        };
        self.at += 1;
        let token = self.next().ok_or_else(|| self.end_error())?;
        let lit = match token.tok {
            Tok::Str(s) => Literal::Str(s),
            Tok::Int(n) => Literal::Int(n),
            Tok::Dec(n) => Literal::Dec(n),
            Tok::DateTime(t) => Literal::DateTime(t),
            Tok::Duration(d) => Literal::Duration(d),
            Tok::Word(w) if w == "null" => Literal::Null,
            Tok::Word(w) if w == "true" => Literal::Bool(true),
            Tok::Word(w) if w == "false" => Literal::Bool(false),
            Tok::Word(w) if !is_keyword(&w) && self.schema.kind_of(&w).is_ok() => {
                return Err(format!(
                    "Comparing two properties ('{field}', '{w}') is not supported by the simulator."
                ));
            }
            _ => return Err(self.syntax_error(token.pos)),
        };
        if !lit.fits(kind) {
            return Err(format!(
                "A binary operator with incompatible types was detected. Found operand types '{}' and '{}' for operator kind '{}'.",
                kind.edm_name(),
                lit.edm_name(),
                op.odata_name()
            ));
        }
        Ok(Expr::Cmp {
            field,
            kind,
            op,
            lit,
        })
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(word, "and" | "or" | "not" | "null" | "true" | "false")
        || CmpOp::from_word(word).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const SCHEMA: Schema = Schema {
        type_name: "Pbx.Test",
        fields: &[
            ("Id", Kind::Number),
            ("Name", Kind::String),
            ("Start", Kind::DateTime),
            ("Answered", Kind::Bool),
            ("Time", Kind::Duration),
            ("Tags", Kind::Collection),
        ],
    };

    fn row() -> Value {
        json!({"Id": 7, "Name": "O'Brien", "Start": "2025-03-01T10:00:00.5Z",
               "Answered": true, "Time": "PT3M35S", "Tags": []})
    }

    fn check(filter: &str, row: &Value) -> bool {
        parse_filter(filter, &SCHEMA).unwrap().matches(row)
    }

    #[test]
    fn comparisons_by_type() {
        let r = row();
        assert!(check("Id eq 7", &r));
        assert!(check("Id gt 6.5 and Id le 7", &r));
        assert!(!check("Id ne 7", &r));
        assert!(check("Name eq 'O''Brien'", &r));
        assert!(!check("Name eq 'o''brien'", &r));
        assert!(check("Answered", &r));
        assert!(check("Answered eq true", &r));
        assert!(check("Time gt duration'PT3M'", &r));
    }

    #[test]
    fn datetimes_compare_as_instants() {
        let r = row();
        assert!(check("Start gt 2025-03-01T10:00:00Z", &r));
        assert!(check("Start eq 2025-03-01T11:00:00.500+01:00", &r));
        assert!(check("Start lt 2025-03-01T10:00:00.501+00:00", &r));
        assert!(!check("Start ge 2025-03-01T10:00:01Z", &r));
    }

    #[test]
    fn boolean_logic_and_precedence() {
        let r = row();
        assert!(check("Id eq 1 or Id eq 7 and Name eq 'O''Brien'", &r));
        assert!(!check("(Id eq 1 or Id eq 7) and Name eq 'x'", &r));
        assert!(check("not (Id eq 1)", &r));
        assert!(check("not Id eq 1", &r));
    }

    #[test]
    fn null_semantics() {
        let r = json!({"Id": null, "Name": "a"});
        assert!(check("Id eq null", &r));
        assert!(!check("Id ne null", &r));
        assert!(check("Id ne 3", &r));
        assert!(!check("Id gt 3", &r));
        assert!(check("Name ne null", &r));
    }

    #[test]
    fn missing_or_mistyped_fields_never_match() {
        let missing = json!({"Name": "a"});
        assert!(!check("Id eq 1", &missing));
        assert!(!check("Id ne 1", &missing));
        assert!(!check("not (Id eq 1)", &missing));
        assert!(check("Id eq 1 or Name eq 'a'", &missing));
        let mistyped = json!({"Start": 12345, "Id": "seven"});
        assert!(!check("Start gt 2025-01-01T00:00:00Z", &mistyped));
        assert!(!check("Id eq 7", &mistyped));
        assert!(!check("Id eq 1", &Value::String("not an object".into())));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |f: &str| parse_filter(f, &SCHEMA).unwrap_err();
        assert!(err("Nope eq 1").contains("'Nope'"));
        assert!(err("Start gt '2025-03-01'").contains("incompatible types"));
        assert!(err("Id eq").contains("Syntax error"));
        assert!(err("Id eq 1 and").contains("Syntax error"));
        assert!(err("(Id eq 1").contains("')' expected"));
        assert!(err("Id eq 1)").contains("Syntax error at position 7"));
        assert!(err("Id has 1").contains("Syntax error"));
        assert!(err("Tags eq null").contains("incompatible"));
        assert!(err("contains(Name,'a')").contains("Unknown function"));
        assert!(err("Name").contains("Syntax error"));
    }
}
