//! `singletable design show`: the table design drawn the way single-table
//! modelers draw it — one row per entity, one column per key attribute
//! (`pk`, `sk`, then each index's keys), the key templates in the cells —
//! followed by notes (sparse indexes, the entity-type attribute, settings)
//! and each entity's attributes.
//!
//! [`render_text`] aligns plain text for a terminal; [`render_markdown`]
//! writes pipe tables a team can paste into its docs.

use std::fmt::Write as _;

use singletable::{AttributeDesign, EntityDesign, KeyDesign, TableDesign};

/// One column of the table: a key attribute of the table or of an index.
struct Column<'a> {
    /// The physical attribute name.
    attr: &'a str,
    /// The index it keys, `None` for the table's own keys.
    index: Option<&'a str>,
    /// Whether it is the sort key.
    sort: bool,
}

impl Column<'_> {
    fn header(&self) -> String {
        match self.index {
            None => self.attr.to_string(),
            Some(index) => format!("{} ({index})", self.attr),
        }
    }

    /// The key design of `entity` that fills this column, if any.
    fn key<'e>(&self, entity: &'e EntityDesign) -> Option<&'e KeyDesign> {
        match self.index {
            None => Some(if self.sort { &entity.sk } else { &entity.pk }),
            Some(name) => {
                let index = entity.index(name)?;
                if self.sort {
                    index.sk.as_ref()
                } else {
                    Some(&index.pk)
                }
            }
        }
    }
}

fn columns(design: &TableDesign) -> Vec<Column<'_>> {
    let mut cols = vec![
        Column { attr: &design.pk_attr, index: None, sort: false },
        Column { attr: &design.sk_attr, index: None, sort: true },
    ];
    for index in &design.indexes {
        cols.push(Column { attr: &index.pk_attr, index: Some(&index.name), sort: false });
        if let Some(sk) = &index.sk_attr {
            cols.push(Column { attr: sk, index: Some(&index.name), sort: true });
        }
    }
    cols
}

/// The rows: entity name, then one template source (or nothing) per column.
fn rows<'a>(design: &'a TableDesign, cols: &[Column<'_>]) -> Vec<(&'a str, Vec<Option<&'a str>>)> {
    design
        .entities
        .iter()
        .map(|e| (e.entity.as_ref(), cols.iter().map(|c| c.key(e).map(|k| k.template.source.as_ref())).collect()))
        .collect()
}

/// Notes under the table, as sentences; `code` wraps names (backticks in
/// Markdown, nothing on a terminal).
fn notes(design: &TableDesign, code: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let index_keys = |name: &str| {
        let i = design.index(name).expect("entities' indexes are declared");
        match &i.sk_attr {
            Some(sk) => format!("{}, {}", code(&i.pk_attr), code(sk)),
            None => code(&i.pk_attr),
        }
    };
    out.push(format!(
        "Table {}: partition key {}, sort key {} (both S).",
        code(&design.table),
        code(&design.pk_attr),
        code(&design.sk_attr)
    ));
    if let Some(first) = design.entities.first() {
        out.push(format!(
            "Every item stores its entity name in {}.",
            code(&first.entity_attr)
        ));
    }
    for index in &design.indexes {
        let users: Vec<&str> =
            design.entities.iter().filter(|e| e.index(&index.name).is_some()).map(|e| e.entity.as_ref()).collect();
        let used_by = if users.is_empty() { "no entity".to_string() } else { users.join(", ") };
        out.push(format!("Index {} (keys {}, projection ALL): {used_by}.", code(&index.name), index_keys(&index.name)));
        for e in &design.entities {
            let Some(i) = e.index(&index.name) else { continue };
            if i.is_sparse() {
                let mut optional: Vec<String> = Vec::new();
                for f in i.keys().flat_map(|k| k.template.fields()).filter(|f| f.optional) {
                    let name = code(&f.attr);
                    if !optional.contains(&name) {
                        optional.push(name);
                    }
                }
                out.push(format!(
                    "Index {} is sparse for {}: items without {} are left out of it.",
                    code(&index.name),
                    e.entity,
                    optional.join(" or ")
                ));
            }
        }
    }
    let s = &design.settings;
    out.push(match &s.ttl_attribute {
        Some(attr) => format!("Time to live: on, attribute {} (epoch seconds).", code(attr)),
        None => "Time to live: off.".to_string(),
    });
    out.push(match s.stream {
        Some(view) => format!("Stream: on, {}.", view.as_str()),
        None => "Stream: off.".to_string(),
    });
    out.push(format!("Point-in-time recovery: {}.", if s.point_in_time_recovery { "on" } else { "off" }));
    out
}

fn attribute_text(a: &AttributeDesign, code: &dyn Fn(&str) -> String) -> String {
    format!("{}{} {}", code(&a.name), if a.optional { "?" } else { "" }, a.ty.name())
}

fn plain(s: &str) -> String {
    s.to_string()
}

/// The design for a terminal: an aligned plain-text table, then notes
/// and attributes. An empty cell means the entity does not write that
/// key (its items are not in that index).
pub fn render_text(design: &TableDesign) -> String {
    let cols = columns(design);
    let rows = rows(design, &cols);
    let mut header: Vec<String> = vec!["entity".to_string()];
    header.extend(cols.iter().map(Column::header));
    let mut table: Vec<Vec<String>> = vec![header];
    for (entity, cells) in &rows {
        let mut row = vec![entity.to_string()];
        row.extend(cells.iter().map(|c| c.unwrap_or("").to_string()));
        table.push(row);
    }
    let widths: Vec<usize> =
        (0..table[0].len()).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat(' ').take(widths[i] - cell.chars().count()));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &table[0]);
    line(&mut out, &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in &table[1..] {
        line(&mut out, row);
    }
    out.push('\n');
    for note in notes(design, &plain) {
        let _ = writeln!(out, "{note}");
    }
    out.push_str("\nAttributes (? = may be absent):\n");
    let name_width = design.entities.iter().map(|e| e.entity.chars().count()).max().unwrap_or(0);
    for e in &design.entities {
        let attrs: Vec<String> = e.attributes.iter().map(|a| attribute_text(a, &plain)).collect();
        let _ = writeln!(out, "  {:<name_width$}  {}", e.entity, attrs.join(", ").trim_end());
    }
    out
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|")
}

/// Text as a code span inside a table cell: backticks around it (more of
/// them when the text holds one), `|` escaped — GitHub-flavoured Markdown
/// removes that backslash even inside code spans of a table.
fn code_cell(text: &str) -> String {
    let ticks = "`".repeat(longest_backtick_run(text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{ticks}{pad}{}{pad}{ticks}", text.replace('|', "\\|"))
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// The design as Markdown: a heading, the key table (templates as code),
/// the notes as a list, and a table of each entity's attributes.
pub fn render_markdown(design: &TableDesign) -> String {
    let cols = columns(design);
    let rows = rows(design, &cols);
    let mut out = String::new();
    let _ = writeln!(out, "### Table `{}`\n", design.table.replace('`', "'"));
    let mut header = vec!["Entity".to_string()];
    header.extend(cols.iter().map(|c| cell(&c.header())));
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
    for (entity, cells) in &rows {
        let _ = write!(out, "| {} |", cell(entity));
        for c in cells {
            match c {
                Some(template) => {
                    let _ = write!(out, " {} |", code_cell(template));
                }
                None => out.push_str(" |"),
            }
        }
        out.push('\n');
    }
    out.push('\n');
    for note in notes(design, &code_cell) {
        let _ = writeln!(out, "- {note}");
    }
    out.push_str("\n| Entity | Attributes (`?` = may be absent) |\n| --- | --- |\n");
    for e in &design.entities {
        let attrs: Vec<String> = e.attributes.iter().map(|a| attribute_text(a, &code_cell)).collect();
        let _ = writeln!(out, "| {} | {} |", cell(&e.entity), attrs.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::fixtures;

    #[test]
    fn text_golden() {
        let text = render_text(&fixtures::design());
        let expected = "\
entity   pk            sk                             gsi1pk (gsi1)  gsi1sk (gsi1)  gsi2pk (gsi2)        gsi2sk (gsi2)
-------  ------------  -----------------------------  -------------  -------------  -------------------  --------------------------------------
User     ORG#{org_id}  USER#{user_id}                 EMAIL#{email}  USER
Project  ORG#{org_id}  PROJECT#{project_id}
Task     ORG#{org_id}  TASK#{project_id}#{number:06}                                ASSIGNEE#{assignee}  TASK#{org_id}|{project_id}#{number:06}

Table app: partition key pk, sort key sk (both S).
Every item stores its entity name in _et.
Index gsi1 (keys gsi1pk, gsi1sk, projection ALL): User.
Index gsi2 (keys gsi2pk, gsi2sk, projection ALL): Task.
Index gsi2 is sparse for Task: items without assignee are left out of it.
Time to live: on, attribute expires_at (epoch seconds).
Stream: on, NEW_AND_OLD_IMAGES.
Point-in-time recovery: off.

Attributes (? = may be absent):
  User     org_id S, user_id S, email S, name S, admin BOOL
  Project  org_id S, project_id S, title S, tags SS
  Task     org_id S, project_id S, number N, assignee? S, done BOOL, expires_at? N, notes L
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn text_without_indexes_or_settings() {
        let text = render_text(&fixtures::small());
        let expected = "\
entity   pk            sk
-------  ------------  --------------------
Project  ORG#{org_id}  PROJECT#{project_id}

Table tiny: partition key pk, sort key sk (both S).
Every item stores its entity name in _et.
Time to live: off.
Stream: off.
Point-in-time recovery: off.

Attributes (? = may be absent):
  Project  org_id S, project_id S, title S, tags SS
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn markdown_golden() {
        let md = render_markdown(&fixtures::design());
        let expected = r"### Table `app`

| Entity | pk | sk | gsi1pk (gsi1) | gsi1sk (gsi1) | gsi2pk (gsi2) | gsi2sk (gsi2) |
| --- | --- | --- | --- | --- | --- | --- |
| User | `ORG#{org_id}` | `USER#{user_id}` | `EMAIL#{email}` | `USER` | | |
| Project | `ORG#{org_id}` | `PROJECT#{project_id}` | | | | |
| Task | `ORG#{org_id}` | `TASK#{project_id}#{number:06}` | | | `ASSIGNEE#{assignee}` | `TASK#{org_id}\|{project_id}#{number:06}` |

- Table `app`: partition key `pk`, sort key `sk` (both S).
- Every item stores its entity name in `_et`.
- Index `gsi1` (keys `gsi1pk`, `gsi1sk`, projection ALL): User.
- Index `gsi2` (keys `gsi2pk`, `gsi2sk`, projection ALL): Task.
- Index `gsi2` is sparse for Task: items without `assignee` are left out of it.
- Time to live: on, attribute `expires_at` (epoch seconds).
- Stream: on, NEW_AND_OLD_IMAGES.
- Point-in-time recovery: off.

| Entity | Attributes (`?` = may be absent) |
| --- | --- |
| User | `org_id` S, `user_id` S, `email` S, `name` S, `admin` BOOL |
| Project | `org_id` S, `project_id` S, `title` S, `tags` SS |
| Task | `org_id` S, `project_id` S, `number` N, `assignee`? S, `done` BOOL, `expires_at`? N, `notes` L |
";
        assert_eq!(md, expected, "\n{md}");
        // Every table row has as many cells as its header.
        for line in md.lines().filter(|l| l.starts_with("| ") && l.contains("{")) {
            let cells = line.replace("\\|", "").matches('|').count() - 1;
            assert_eq!(cells, 7, "{line}");
        }
    }

    #[test]
    fn markdown_escapes() {
        assert_eq!(code_cell("A|B"), r"`A\|B`");
        assert_eq!(code_cell("A`B"), "``A`B``");
        assert_eq!(code_cell("`A"), "`` `A ``");
        assert_eq!(cell("a|b\\c"), r"a\|b\\c");
    }
}
