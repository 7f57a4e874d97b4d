//! `lots`: the command line.

fn main() {}
