//! The benchmark's report: Markdown printed as it is produced and kept for the results file,
//! the long-format CSV beside it, and a closing table of every target next to what was
//! measured. Targets are reported, never asserted.

use std::io;
use std::path::Path;

use crate::stats::{Csv, Table};

/// Everything the run prints, kept for the results files.
pub struct Report {
    markdown: String,
    /// Every figure, one row each.
    pub csv: Csv,
    targets: Table,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            markdown: String::new(),
            csv: Csv::default(),
            targets: Table::new(
                "Targets (reported, never asserted)",
                &["section", "figure", "target", "measured", "met"],
            ),
        }
    }
}

impl Report {
    /// Prints `text` (a line or a paragraph) and keeps it.
    pub fn text(&mut self, text: &str) {
        println!("{text}");
        self.markdown.push_str(text);
        self.markdown.push('\n');
    }

    /// Prints a table, followed by a blank line, and keeps it.
    pub fn table(&mut self, table: &Table) {
        self.text(&table.render());
    }

    /// Records a target for the closing table: `met` is `None` when it could not be judged
    /// (a figure missing, nginx not installed).
    pub fn target(
        &mut self,
        section: &str,
        figure: &str,
        target: &str,
        measured: &str,
        met: Option<bool>,
    ) {
        self.targets.row(vec![
            section.into(),
            figure.into(),
            target.into(),
            measured.into(),
            verdict(met),
        ]);
    }

    /// Prints the closing table of targets, if any were recorded.
    pub fn finish(&mut self) {
        let targets = std::mem::replace(&mut self.targets, Table::new("", &[]));
        if !targets.is_empty() {
            self.table(&targets);
        }
    }

    /// Writes the Markdown and the CSV.
    pub fn write(&self, markdown: &Path, csv: &Path) -> io::Result<()> {
        if let Some(parent) = markdown.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(markdown, &self.markdown)?;
        self.csv.write(csv)
    }
}

/// `yes`, `NO` or `n/a`, for a target's `met` cell.
pub fn verdict(met: Option<bool>) -> String {
    match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "n/a",
    }
    .to_owned()
}
