//! [`Table`]: the comparison table of one scenario, one column per variant. The same
//! strings are printed by `compare` ([`Table::to_text`]) and rendered in the report.

/// The comparison table: printed to the terminal AND rendered in HTML from the same
/// values.
///
/// ```
/// use flink_examples::report::Table;
///
/// let mut table = Table::new(["five-stage", "operator chain"]);
/// table.row("records/s", ["74,120", "70,503"]);
/// table.note("retries: five-stage only");
/// assert_eq!(
///     table.to_text(),
///     "           five-stage  operator chain\n\
///      records/s      74,120          70,503\n\
///      retries: five-stage only\n"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// The variant names, e.g. `["five-stage", "operator chain"]`.
    pub columns: Vec<String>,
    /// One row per measured quantity.
    pub rows: Vec<TableRow>,
    /// Free lines printed under the table (accounting lines, knobs on one side only).
    pub notes: Vec<String>,
}

/// One measured quantity: its label and one value per column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableRow {
    /// What is measured, with its unit, e.g. "records/s".
    pub label: String,
    /// One value per column (`values.len() == columns.len()`), as printed.
    pub values: Vec<String>,
}

/// Space between two columns of the text form.
const GAP: &str = "  ";

impl Table {
    /// An empty table with these column (variant) names.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Self {
            columns: columns.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Appends a row: its label and one value per column.
    pub fn row<S: Into<String>>(
        &mut self,
        label: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.rows.push(TableRow {
            label: label.into(),
            values: values.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Appends a free line printed under the table.
    pub fn note(&mut self, line: impl Into<String>) -> &mut Self {
        self.notes.push(line.into());
        self
    }

    /// How many value columns the table has: the named ones, or more if a row has
    /// more values (a malformed table is still printed whole, never cut).
    pub fn width(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.values.len())
            .fold(self.columns.len(), usize::max)
    }

    /// The fixed-width text form `compare` prints (a header line with the column
    /// names, one line per row, then the notes). Labels are left-aligned, values
    /// right-aligned; widths count characters, not bytes. A missing value prints as
    /// blank.
    pub fn to_text(&self) -> String {
        let label_width = self.rows.iter().map(|r| chars(&r.label)).max().unwrap_or(0);
        let widths: Vec<usize> = (0..self.width())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| cell(&r.values, c))
                    .chain([cell(&self.columns, c)])
                    .map(chars)
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |label: &str, cells: &[String]| {
            let mut line = format!("{label:<label_width$}");
            for (c, width) in widths.iter().enumerate() {
                line.push_str(GAP);
                line.push_str(&format!("{:>width$}", cell(cells, c)));
            }
            line.truncate(line.trim_end().len());
            line.push('\n');
            line
        };
        let mut text = line("", &self.columns);
        for row in &self.rows {
            text.push_str(&line(&row.label, &row.values));
        }
        for note in &self.notes {
            text.push_str(note);
            text.push('\n');
        }
        text
    }
}

/// The `c`-th cell, or blank where the row is short.
pub(super) fn cell(cells: &[String], c: usize) -> &str {
    cells.get(c).map_or("", String::as_str)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_in_characters() {
        let mut table = Table::new(["a", "bb"]);
        table.row("µs label", ["1", "22222"]).row("x", ["333", ""]);
        assert_eq!(
            table.to_text(),
            "            a     bb\n\
             µs label    1  22222\n\
             x         333\n"
        );
    }

    #[test]
    fn a_short_or_long_row_is_printed_whole_without_panicking() {
        let mut table = Table::new(["one"]);
        table
            .row("short", Vec::<String>::new())
            .row("long", ["1", "2"]);
        assert_eq!(table.width(), 2);
        let text = table.to_text();
        assert!(text.contains("long     1  2"), "{text}");
    }

    #[test]
    fn an_empty_table_prints_an_empty_header_line() {
        assert_eq!(Table::default().to_text(), "\n");
    }
}
