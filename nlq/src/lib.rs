//! `nlq` — Aurora's natural-language engine.
//!
//! Today it holds the recognition of Aurora's statements (`ASK '…'`, `EXPLAIN ASK '…'`) that both sides of the
//! proxy share; the engine that turns a question into a validated, parameterized ClickHouse query grows here.

pub mod statement;

pub use statement::{
    classify, classify_prefix, AskStatement, AskSyntaxError, Prefix, SettingValue, Statement,
};
