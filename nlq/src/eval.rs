//! Evaluation (filled in next).
