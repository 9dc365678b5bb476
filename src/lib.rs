//! The `emobench` application: the command line ([`cli`]), one library call per command
//! ([`commands`]) and the demo ([`demo`]). The work itself lives in the workspace's crates:
//! `emobench_core` (the harness), `models`, `baselines`, `emoeditor`, `reports` and `studies`.

pub mod cli;
pub mod commands;
pub mod demo;
