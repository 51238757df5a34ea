//! What the commands print: their answers on standard output, as aligned
//! tables for people or, with `--json`, one JSON document for scripts; and
//! the one line on standard error when a command fails, with the exit
//! status `--help` documents.
//!
//! Tables are laid out by comfy-table (no borders, so a row is one
//! whitespace-separated line that `awk` and the tests can split). Colour
//! goes through anstream, which writes escape codes only to a terminal and
//! never when NO_COLOR is set. Logs go to standard error through tracing;
//! only this module writes to standard output.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use anstyle::{AnsiColor, Style};
use comfy_table::{CellAlignment, Table};

use crate::wiring::Unreachable;

mod reports;

pub use reports::*;

/// Exit status: the answer is "not in order" (drift, not visible everywhere).
pub const NOT_IN_ORDER: u8 = 3;
/// Exit status: a dependency could not be reached.
pub const UNREACHABLE: u8 = 4;

/// How the answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables and lines, for a terminal.
    Table,
    /// One JSON document (`--json`).
    Json,
}

impl Format {
    /// The format `--json` asks for.
    pub fn from_flag(json: bool) -> Self {
        if json { Self::Json } else { Self::Table }
    }
}

/// Green for "in order", red for "not", bold for headings (stripped off a
/// terminal or with NO_COLOR by anstream).
pub fn good(text: &str) -> String {
    paint(Style::new().fg_color(Some(AnsiColor::Green.into())), text)
}

/// See [`good`].
pub fn bad(text: &str) -> String {
    paint(
        Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
        text,
    )
}

/// See [`good`].
pub fn heading(text: &str) -> String {
    paint(Style::new().bold(), text)
}

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// A borderless table with `header`; columns from `right_from` on are
/// right-aligned (the numbers).
pub fn table(header: &[&str], right_from: usize) -> Table {
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    for (i, column) in table.column_iter_mut().enumerate() {
        // No left padding: each row starts with its first cell.
        column.set_padding((0, 2));
        if i >= right_from {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Lines on standard output (colour stripped where it does not belong).
pub fn print_lines(lines: &[String]) {
    for line in lines {
        anstream::println!("{line}");
    }
}

/// A table on standard output, without trailing blanks.
pub fn print_table(table: &Table) {
    for line in table.lines() {
        anstream::println!("{}", line.trim_end());
    }
}

/// A JSON document on standard output, pretty-printed.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Says on standard error why the command failed; returns the documented
/// exit status ([`UNREACHABLE`] when a dependency could not be reached,
/// 1 otherwise).
pub fn failed(err: &anyhow::Error) -> ExitCode {
    anstream::eprintln!("{}: {err:#}", bad("orderctl: error"));
    if err.chain().any(|e| e.is::<Unreachable>()) {
        ExitCode::from(UNREACHABLE)
    } else {
        ExitCode::FAILURE
    }
}
