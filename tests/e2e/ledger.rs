//! The copy ledger under concurrent runs and dry runs, end to end.
