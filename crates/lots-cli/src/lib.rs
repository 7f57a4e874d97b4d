//! The `lots` command line (work in progress).
