//! A [`Plan`] as people read it, in Terraform's idiom: `+` create, `~`
//! update in place, `-/+` replace, `-` destroy, then
//! `Plan: N to add, M to change, R to replace, K to destroy.` (a key move
//! is a replacement, never a destruction) or `No changes.`
//!
//! Pure: the text depends on the plan alone.

use std::fmt::Write as _;

use crate::plan::{Action, Change, EntityReport, IndexKeyChange, Plan, Rewrite};

const INDENT: &str = "      ";

/// Renders the plan for a terminal or a log.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let unknown: Vec<&EntityReport> = plan.entities.iter().filter(|r| r.unknown).collect();
    if plan.is_empty() {
        out.push_str("No changes. The table matches the design.\n");
        warnings(&mut out, &unknown);
        return out;
    }

    let _ = writeln!(out, "Table `{}`: singletable will perform the following actions.", plan.table);
    out.push_str("Actions are indicated with the following symbols:\n");
    for (action, meaning) in [
        (Action::Create, "create"),
        (Action::Update, "update in place"),
        (Action::Replace, "replace (the new form is written before the old one is deleted)"),
        (Action::Destroy, "destroy"),
    ] {
        if plan.changes.iter().any(|c| c.action() == action) {
            let _ = writeln!(out, "{:>3} {meaning}", action.symbol());
        }
    }
    out.push('\n');

    let mut shown: Vec<&str> = Vec::new();
    for change in &plan.changes {
        let symbol = format!("{:>3}", change.action().symbol());
        match change {
            Change::CreateTable { table } => {
                let _ = writeln!(out, "{symbol} create table {table}");
            }
            Change::CopyToNewTable { from, to, reason } => {
                let _ = writeln!(out, "{symbol} copy table {from} -> {to}: {reason}");
                for r in plan.entities.iter().filter(|r| !r.unknown) {
                    entity_block(&mut out, r, "to copy", true);
                    shown.push(&r.entity);
                }
            }
            Change::UpdateTtl { from, to } => {
                let _ = writeln!(out, "{symbol} update time to live: {} -> {}", or_none(from.as_deref()), or_none(to.as_deref()));
            }
            Change::UpdateStream { from, to } => {
                let _ = writeln!(
                    out,
                    "{symbol} update stream: {} -> {}",
                    or_none(from.map(|s| s.as_str())),
                    or_none(to.map(|s| s.as_str()))
                );
            }
            Change::UpdatePointInTimeRecovery { from, to } => {
                let from = match from {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "(unknown)",
                };
                let _ = writeln!(out, "{symbol} update point-in-time recovery: {from} -> {}", if *to { "on" } else { "off" });
            }
            Change::CreateIndex { index, multi_attribute_hint } => {
                let _ = writeln!(out, "{symbol} create index {} ({})", index.name, index_attrs(&index.pk_attr, index.sk_attr.as_deref()));
                if let Some(hint) = multi_attribute_hint {
                    let _ = writeln!(out, "{INDENT}hint: {} {hint}", index.name);
                }
            }
            Change::DeleteIndex { index } => {
                let _ = writeln!(out, "{symbol} destroy index {} ({})", index.name, index_attrs(&index.pk_attr, index.sk_attr.as_deref()));
            }
            Change::AddEntity { entity } => {
                let _ = writeln!(out, "{symbol} add entity {entity}");
                if let Some(r) = report(plan, entity).filter(|r| r.items > 0) {
                    entity_block(&mut out, r, "to change", false);
                }
                shown.push(entity);
            }
            Change::RemoveEntity { entity } => {
                let _ = writeln!(out, "{symbol} destroy entity {entity}: its items are deleted (exported first)");
                if let Some(r) = report(plan, entity) {
                    entity_block(&mut out, r, "to delete", false);
                }
                shown.push(entity);
            }
            Change::Rewrite(r) => {
                rewrite_lines(&mut out, &symbol, r);
                if let Some(rep) = report(plan, &r.entity) {
                    let verb = if r.table_key.is_some() { "to move" } else { "to update" };
                    entity_block(&mut out, rep, verb, true);
                }
                shown.push(&r.entity);
            }
        }
    }

    let unchanged: Vec<String> = plan
        .entities
        .iter()
        .filter(|r| !r.unknown && !shown.contains(&r.entity.as_str()))
        .map(|r| format!("{} ({} item{})", r.entity, r.items, plural(r.items)))
        .collect();
    if !unchanged.is_empty() {
        let _ = writeln!(out, "\nUnchanged: {}.", unchanged.join(", "));
    }

    let units: u64 = plan.entities.iter().map(|r| r.write_units).sum();
    if units > 0 {
        let _ = writeln!(out, "\nEstimated writes: {units} WCU in total, {}.", duration(plan.entities.iter().map(|r| (r.write_units, r.max_wcu))));
    }
    warnings(&mut out, &unknown);

    let (add, change, replace, destroy) = plan.summary();
    let _ = writeln!(out, "\nPlan: {add} to add, {change} to change, {replace} to replace, {destroy} to destroy.");
    let errors = plan.blocking_errors().len();
    if errors > 0 {
        let _ = writeln!(
            out,
            "\nError: apply will refuse this plan: {errors} problem{} above must be resolved first.",
            plural(errors as u64)
        );
    }
    out
}

fn report<'p>(plan: &'p Plan, entity: &str) -> Option<&'p EntityReport> {
    plan.entities.iter().find(|r| !r.unknown && r.entity == entity)
}

fn warnings(out: &mut String, unknown: &[&EntityReport]) {
    let lines: Vec<&String> = unknown.iter().flat_map(|r| r.warnings.iter()).collect();
    if !lines.is_empty() {
        out.push('\n');
        for w in lines {
            let _ = writeln!(out, "Warning: {w}");
        }
    }
}

fn or_none(v: Option<&str>) -> &str {
    v.unwrap_or("(none)")
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn index_attrs(pk: &str, sk: Option<&str>) -> String {
    match sk {
        Some(sk) => format!("{pk}, {sk}"),
        None => pk.to_string(),
    }
}

fn templates(t: &(String, Option<String>)) -> String {
    match &t.1 {
        Some(sk) => format!("({}, {sk})", t.0),
        None => format!("({})", t.0),
    }
}

fn index_change(c: &IndexKeyChange) -> String {
    match (&c.old, &c.new) {
        (Some(old), Some(new)) => format!("index {} {} -> {}", c.index, templates(old), templates(new)),
        (None, Some(new)) => format!("index {} keys added {}", c.index, templates(new)),
        (Some(old), None) => format!("index {} keys removed (were {})", c.index, templates(old).trim_matches(['(', ')'])),
        (None, None) => format!("index {}", c.index),
    }
}

fn rewrite_lines(out: &mut String, symbol: &str, r: &Rewrite) {
    let mut rest: Vec<String> = r.indexes.iter().map(index_change).collect();
    match &r.table_key {
        Some(k) => {
            let mut parts = Vec::new();
            if k.old_pk != k.new_pk {
                parts.push(format!("pk {} -> {}", k.old_pk, k.new_pk));
            }
            if k.old_sk != k.new_sk {
                parts.push(format!("sk {} -> {}", k.old_sk, k.new_sk));
            }
            let _ = writeln!(out, "{symbol} move {} items: {}", r.entity, parts.join(", "));
        }
        None => {
            let first = if rest.is_empty() { "keys re-rendered".to_string() } else { rest.remove(0) };
            let _ = writeln!(out, "{symbol} rewrite {}: {first}", r.entity);
        }
    }
    for line in rest {
        let _ = writeln!(out, "{INDENT}{line}");
    }
    if !r.needs_attributes.is_empty() {
        let _ = writeln!(
            out,
            "{INDENT}new templates read {}, which old items may lack",
            r.needs_attributes.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
        );
    }
}

fn entity_block(out: &mut String, r: &EntityReport, verb: &str, estimate: bool) {
    let _ = writeln!(out, "{INDENT}{}: {} item{}, {} {verb}", r.entity, r.items, plural(r.items), r.changing);
    for (before, after) in &r.samples {
        let _ = writeln!(out, "{INDENT}  {before}");
        let _ = writeln!(out, "{INDENT}  -> {after}");
    }
    let prefix = format!("{}: ", r.entity);
    for e in &r.errors {
        let _ = writeln!(out, "{INDENT}error: {}", e.strip_prefix(&prefix).unwrap_or(e));
    }
    for w in &r.warnings {
        let _ = writeln!(out, "{INDENT}warning: {}", w.strip_prefix(&prefix).unwrap_or(w));
    }
    if estimate && r.changing > 0 {
        let _ = writeln!(out, "{INDENT}estimated {} WCU, {}", r.write_units, duration([(r.write_units, r.max_wcu)]));
    }
}

/// "about 2 min 5 s at 100 WCU/s", or "unthrottled" when no budget was set.
fn duration(parts: impl IntoIterator<Item = (u64, Option<f64>)>) -> String {
    let mut secs = 0.0;
    let mut rate = None;
    for (units, max) in parts {
        match max.filter(|r| *r > 0.0) {
            Some(r) => {
                secs += units as f64 / r;
                rate = Some(r);
            }
            None if units > 0 => return "unthrottled (no write budget set: as fast as the table takes it)".to_string(),
            None => {}
        }
    }
    let Some(rate) = rate else {
        return "unthrottled (no write budget set: as fast as the table takes it)".to_string();
    };
    let s = secs.ceil() as u64;
    let text = if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600).div_ceil(60))
    };
    format!("about {text} at {} WCU/s", trim_rate(rate))
}

fn trim_rate(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{}", r as u64)
    } else {
        format!("{r}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TableKeyChange;
    use singletable::{StreamView, TableDesign, TableIndex};

    #[derive(singletable::Item)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    #[allow(dead_code)]
    struct User {
        org: String,
        id: String,
    }

    fn plan(changes: Vec<Change>, entities: Vec<EntityReport>) -> Plan {
        let d = TableDesign::new("app").entity::<User>().build().unwrap();
        Plan { table: "app".into(), from: Some(d.clone()), to: d, changes, entities, fingerprint: "0123456789abcdef".into(), defaults: vec![] }
    }

    fn user_report(items: u64, changing: u64, units: u64, max_wcu: Option<f64>) -> EntityReport {
        EntityReport {
            entity: "User".into(),
            items,
            changing,
            samples: vec![
                ("pk=ORG#acme sk=USER#ann".into(), "pk=TENANT#acme sk=USER#ann".into()),
                ("pk=ORG#acme sk=USER#bob".into(), "pk=TENANT#acme sk=USER#bob".into()),
            ],
            write_units: units,
            max_wcu,
            duration_secs: max_wcu.map(|r| units as f64 / r),
            ..Default::default()
        }
    }

    fn gsi(name: &str, sk: bool) -> TableIndex {
        TableIndex { name: name.into(), pk_attr: format!("{name}pk"), sk_attr: sk.then(|| format!("{name}sk")) }
    }

    #[test]
    fn no_changes() {
        assert_eq!(render_plan(&plan(vec![], vec![])), "No changes. The table matches the design.\n");
        let stray = EntityReport { entity: "Legacy".into(), items: 2, unknown: true, warnings: vec!["2 items of entity type `Legacy`, which neither design knows; apply leaves them as they are".into()], ..Default::default() };
        assert_eq!(
            render_plan(&plan(vec![], vec![stray])),
            "No changes. The table matches the design.\n\nWarning: 2 items of entity type `Legacy`, which neither design knows; apply leaves them as they are\n"
        );
    }

    #[test]
    fn a_move_with_samples_and_estimate() {
        let change = Change::Rewrite(Rewrite {
            entity: "User".into(),
            table_key: Some(TableKeyChange { old_pk: "ORG#{org}".into(), new_pk: "TENANT#{org}".into(), old_sk: "USER#{id}".into(), new_sk: "USER#{id}".into() }),
            indexes: vec![],
            needs_attributes: vec![],
        });
        let text = render_plan(&plan(vec![change], vec![user_report(2, 2, 4, Some(1.0))]));
        assert_eq!(
            text,
            "\
Table `app`: singletable will perform the following actions.
Actions are indicated with the following symbols:
-/+ replace (the new form is written before the old one is deleted)

-/+ move User items: pk ORG#{org} -> TENANT#{org}
      User: 2 items, 2 to move
        pk=ORG#acme sk=USER#ann
        -> pk=TENANT#acme sk=USER#ann
        pk=ORG#acme sk=USER#bob
        -> pk=TENANT#acme sk=USER#bob
      estimated 4 WCU, about 4 s at 1 WCU/s

Estimated writes: 4 WCU in total, about 4 s at 1 WCU/s.

Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy.
"
        );
    }

    #[test]
    fn every_kind_of_change_with_errors_and_warnings() {
        let changes = vec![
            Change::UpdateTtl { from: None, to: Some("expires_at".into()) },
            Change::UpdateStream { from: Some(StreamView::KeysOnly), to: None },
            Change::UpdatePointInTimeRecovery { from: None, to: true },
            Change::CreateIndex { index: gsi("gsi2", false), multi_attribute_hint: Some("could be keyed directly on existing attributes with a multi-attribute GSI key (User: partition (name)), which needs no backfill".into()) },
            Change::AddEntity { entity: "Project".into() },
            Change::Rewrite(Rewrite {
                entity: "User".into(),
                table_key: None,
                indexes: vec![
                    IndexKeyChange { index: "gsi1".into(), old: Some(("EMAIL#{email}".into(), Some("USER".into()))), new: Some(("MAIL#{email}".into(), None)) },
                    IndexKeyChange { index: "gsi2".into(), old: None, new: Some(("NAME#{name}".into(), None)) },
                ],
                needs_attributes: vec!["name".into()],
            }),
            Change::RemoveEntity { entity: "Note".into() },
            Change::DeleteIndex { index: gsi("gsi0", true) },
        ];
        let mut user = user_report(3, 3, 3, None);
        user.samples.truncate(1);
        user.samples[0] = ("pk=ORG#acme sk=USER#ann gsi1pk=EMAIL#a gsi1sk=USER".into(), "pk=ORG#acme sk=USER#ann gsi1pk=MAIL#a gsi2pk=NAME#Ann".into());
        user.errors = vec!["User: 1 of 3 items lack `name`, which the new key `gsi2pk` needs (e.g. pk=ORG#acme sk=USER#cy); give a value with --default User.name=VALUE, or write the attribute first".into()];
        let note = EntityReport { entity: "Note".into(), items: 1, changing: 1, write_units: 1, samples: vec![("pk=ORG#acme sk=NOTE#1".into(), "(deleted)".into())], ..Default::default() };
        let project = EntityReport { entity: "Project".into(), ..Default::default() };
        let task = EntityReport { entity: "Task".into(), items: 7, ..Default::default() };
        let stray = EntityReport { entity: "(none)".into(), items: 1, unknown: true, warnings: vec!["1 item without an entity-type attribute (_et); apply leaves them as they are".into()], ..Default::default() };
        let text = render_plan(&plan(changes, vec![user, note, project, task, stray]));
        assert_eq!(
            text,
            "\
Table `app`: singletable will perform the following actions.
Actions are indicated with the following symbols:
  + create
  ~ update in place
  - destroy

  ~ update time to live: (none) -> expires_at
  ~ update stream: KEYS_ONLY -> (none)
  ~ update point-in-time recovery: (unknown) -> on
  + create index gsi2 (gsi2pk)
      hint: gsi2 could be keyed directly on existing attributes with a multi-attribute GSI key (User: partition (name)), which needs no backfill
  + add entity Project
  ~ rewrite User: index gsi1 (EMAIL#{email}, USER) -> (MAIL#{email})
      index gsi2 keys added (NAME#{name})
      new templates read `name`, which old items may lack
      User: 3 items, 3 to update
        pk=ORG#acme sk=USER#ann gsi1pk=EMAIL#a gsi1sk=USER
        -> pk=ORG#acme sk=USER#ann gsi1pk=MAIL#a gsi2pk=NAME#Ann
      error: 1 of 3 items lack `name`, which the new key `gsi2pk` needs (e.g. pk=ORG#acme sk=USER#cy); give a value with --default User.name=VALUE, or write the attribute first
      estimated 3 WCU, unthrottled (no write budget set: as fast as the table takes it)
  - destroy entity Note: its items are deleted (exported first)
      Note: 1 item, 1 to delete
        pk=ORG#acme sk=NOTE#1
        -> (deleted)
  - destroy index gsi0 (gsi0pk, gsi0sk)

Unchanged: Task (7 items).

Estimated writes: 4 WCU in total, unthrottled (no write budget set: as fast as the table takes it).

Warning: 1 item without an entity-type attribute (_et); apply leaves them as they are

Plan: 2 to add, 4 to change, 0 to replace, 2 to destroy.

Error: apply will refuse this plan: 1 problem above must be resolved first.
"
        );
    }

    #[test]
    fn a_copy_and_a_new_table() {
        let copy = plan(vec![Change::CopyToNewTable { from: "app".into(), to: "app-v2".into(), reason: "base key schema (pk, sk) -> (PK, SK)".into() }], vec![user_report(2, 2, 2, Some(1000.0))]);
        let text = render_plan(&copy);
        assert!(text.contains("-/+ copy table app -> app-v2: base key schema (pk, sk) -> (PK, SK)\n      User: 2 items, 2 to copy\n"), "{text}");
        assert!(text.contains("estimated 2 WCU, about 1 s at 1000 WCU/s\n"), "{text}");
        let created = plan(vec![Change::CreateTable { table: "app".into() }, Change::AddEntity { entity: "User".into() }], vec![]);
        assert!(render_plan(&created).ends_with("  + create table app\n  + add entity User\n\nPlan: 2 to add, 0 to change, 0 to replace, 0 to destroy.\n"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration([(90, Some(1.0))]), "about 1 min 30 s at 1 WCU/s");
        assert_eq!(duration([(7200, Some(0.5))]), "about 4 h 0 min at 0.5 WCU/s");
        assert_eq!(duration([(0, None)]), "unthrottled (no write budget set: as fast as the table takes it)");
    }
}
