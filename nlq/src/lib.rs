//! `nlq` — Aurora's natural-language engine.
//!
//! Today it holds the recognition of Aurora's statements (`ASK '…'`, `EXPLAIN ASK '…'`) that both sides of the
//! proxy share, the validation of generated SQL against the asking user's tables ([`validate`]) and the
//! binding of the model's parameter values to its placeholders ([`bind`]); the engine that turns a question
//! into a validated, parameterized ClickHouse query grows here.

pub mod bind;
pub mod error;
pub mod statement;
pub mod validate;

pub use bind::{check_params, query_parameters, substitute_literals, BoundParam, BoundValue};
pub use error::{BindError, ValidationError};
pub use statement::{
    classify, classify_prefix, AskStatement, AskSyntaxError, Prefix, SettingValue, Statement,
};
pub use validate::{validate, ParamType, Placeholder, PlaceholderSite, Policy, TableName, ValidatedQuery};
