//! Integration tests of glassbox-evals.
