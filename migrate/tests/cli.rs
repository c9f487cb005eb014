//! `singletable migrate plan`, `apply` and `restore`, end to end: the
//! built binary against DynamoDB Local, one fresh table per test, each plan
//! case of the issue.

use std::path::PathBuf;
use std::process::Command;

use singletable::{Table, TableDesign};
use singletable_migrate::reserved::record_design;
use singletable_migrate::{Change, Plan};
use singletable_tests::{client, endpoint, unique_table_name};

mod base {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
    }

    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "Project", pk = "ORG#{org}", sk = "PROJECT#{id}")]
    pub struct Project {
        pub org: String,
        pub id: String,
    }
}

mod indexed {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
    }
}

mod reindexed {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "MAIL#{email}", sk = "USER"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
    }
}

mod moved {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
    }
}

mod regional {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "R#{region}#USER#{id}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
        pub region: String,
    }
}

mod by_email {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{email}")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
    }
}

mod rekeyed {
    #[derive(singletable::Item, Debug, Clone)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}", pk_attr = "PK", sk_attr = "SK")]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
    }
}

fn design(entities: &[&singletable::EntityDesign]) -> TableDesign {
    entities.iter().fold(TableDesign::new("app"), |b, e| b.entity_design((*e).clone())).build().unwrap()
}

fn users_and_projects() -> TableDesign {
    design(&[<base::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN])
}

fn user(id: &str, email: &str) -> base::User {
    base::User { org: "acme".into(), id: id.into(), email: email.into(), name: id.to_uppercase() }
}

/// A fresh table built with `old`, holding `users` and one project, with
/// `old` recorded in it when `record`.
async fn table(old: &TableDesign, users: &[base::User], record: bool) -> Table {
    let mut d = old.clone();
    d.table = unique_table_name("cli-plan");
    let t = Table::new(client().await, d.clone());
    t.create_table().await.unwrap();
    // Users stored as `old` stores them: the payload of `base::User`, keys
    // rendered by `old`'s User design.
    let entity = d.entity("User").unwrap();
    for u in users {
        let mut item = singletable::Item::to_item(u).unwrap();
        for (attr, key) in entity.render_keys(&item).unwrap() {
            item.insert(attr, singletable::AttributeValue::S(key));
        }
        t.client().put_item().table_name(t.name()).set_item(Some(item)).send().await.unwrap();
    }
    if d.entity("Project").is_some() {
        t.put(&base::Project { org: "acme".into(), id: "p1".into() }).await.unwrap();
    }
    if record {
        record_design(t.client(), &d, &d.table).await.unwrap();
    }
    t
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `singletable migrate plan --design NEW --table T --detailed-exitcode ARGS`.
async fn plan(t: &Table, new: &TableDesign, args: &[&str]) -> Run {
    let path = tmp(&format!("{}-new.json", t.name()));
    std::fs::write(&path, new.to_json()).unwrap();
    let mut all = vec!["migrate".to_string(), "plan".into(), "--design".into(), path.display().to_string()];
    all.extend(["--table".to_string(), t.name().to_string(), "--detailed-exitcode".into()]);
    all.extend(args.iter().map(|s| s.to_string()));
    run(all).await
}

async fn run(args: Vec<String>) -> Run {
    run_with_input(args, "").await
}

async fn run_with_input(args: Vec<String>, input: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_singletable"));
    command.args(&args);
    local_aws(&mut command).await;
    output(command, input, &args).await
}

/// The AWS environment of the tests: DynamoDB Local, its dummy
/// credentials, and nothing of the machine's own configuration.
async fn local_aws(command: &mut Command) {
    command
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint().await)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}

/// Runs `command` with `input` on a pipe as standard input.
async fn output(mut command: Command, input: &str, args: &[String]) -> Run {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the singletable binary runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    eprintln!("$ singletable {}\n{}{}(exit {})", args.join(" "), r.stdout, r.stderr, r.code);
    r
}

/// Runs the binary on a terminal (util-linux `script` gives it one), as a
/// person would, typing `input`. Standard output and error both land in
/// `stdout`.
async fn run_on_terminal(args: Vec<String>, input: &str) -> Run {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_singletable")).chain(args.iter().map(String::as_str)).map(quote).collect();
    let mut command = Command::new("script");
    command.args(["--quiet", "--return", "--command", &line.join(" "), "/dev/null"]);
    local_aws(&mut command).await;
    let mut r = output(command, input, &args).await;
    r.stdout = r.stdout.replace("\r\n", "\n");
    r
}

fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

#[tokio::test]
async fn no_changes_exits_0() {
    let d = users_and_projects();
    let t = table(&d, &[user("ann", "a@x")], true).await;
    let r = plan(&t, &d, &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "No changes. The table matches the design.\n");
}

#[tokio::test]
async fn a_new_index_is_created_and_backfilled() {
    let old = users_and_projects();
    let new = design(&[<indexed::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x"), user("bob", "b@x")], true).await;
    let r = plan(&t, &new, &["--max-wcu", "1"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(&r.stdout, "  + create index gsi1 (gsi1pk, gsi1sk)\n      hint: gsi1 could be keyed directly on existing attributes with a multi-attribute GSI key (User: partition (email)), which needs no backfill\n");
    assert_has(
        &r.stdout,
        "  ~ rewrite User: index gsi1 keys added (EMAIL#{email}, USER)\n      User: 2 items, 2 to update\n        pk=ORG#acme sk=USER#ann\n        -> pk=ORG#acme sk=USER#ann gsi1pk=EMAIL#a@x gsi1sk=USER\n",
    );
    assert_has(&r.stdout, "      estimated 2 WCU, about 2 s at 1 WCU/s\n");
    assert_has(&r.stdout, "Unchanged: Project (1 item).");
    assert!(r.stdout.ends_with("Plan: 1 to add, 1 to change, 0 to replace, 0 to destroy.\n"), "{}", r.stdout);
}

#[tokio::test]
async fn a_removed_index_is_destroyed() {
    let old = design(&[<indexed::User as singletable::Item>::DESIGN]);
    let new = design(&[<base::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x")], true).await;
    let r = plan(&t, &new, &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(&r.stdout, "  ~ rewrite User: index gsi1 keys removed (were EMAIL#{email}, USER)\n      User: 1 item, 1 to update\n        pk=ORG#acme sk=USER#ann gsi1pk=EMAIL#a@x gsi1sk=USER\n        -> pk=ORG#acme sk=USER#ann\n");
    assert_has(&r.stdout, "  - destroy index gsi1 (gsi1pk, gsi1sk)\n");
    assert_has(&r.stdout, "Plan: 0 to add, 1 to change, 0 to replace, 1 to destroy.");
}

#[tokio::test]
async fn an_index_template_change_rewrites_in_place() {
    let old = design(&[<indexed::User as singletable::Item>::DESIGN]);
    let new = design(&[<reindexed::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x")], true).await;
    let r = plan(&t, &new, &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(
        &r.stdout,
        "  ~ rewrite User: index gsi1 (EMAIL#{email}, USER) -> (MAIL#{email}, USER)\n      User: 1 item, 1 to update\n        pk=ORG#acme sk=USER#ann gsi1pk=EMAIL#a@x gsi1sk=USER\n        -> pk=ORG#acme sk=USER#ann gsi1pk=MAIL#a@x gsi1sk=USER\n      estimated 1 WCU, unthrottled",
    );
    assert!(!r.stdout.contains("create index") && !r.stdout.contains("destroy index"), "{}", r.stdout);
    assert_has(&r.stdout, "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
}

#[tokio::test]
async fn a_pk_template_change_moves_items_with_samples() {
    let old = users_and_projects();
    let new = design(&[<moved::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let users: Vec<base::User> = ["dan", "ann", "cy", "bob"].iter().map(|id| user(id, &format!("{id}@x"))).collect();
    let t = table(&old, &users, true).await;
    let r = plan(&t, &new, &["--segments", "3"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(
        &r.stdout,
        "\
-/+ move User items: pk ORG#{org} -> TENANT#{org}
      User: 4 items, 4 to move
        pk=ORG#acme sk=USER#ann
        -> pk=TENANT#acme sk=USER#ann
        pk=ORG#acme sk=USER#bob
        -> pk=TENANT#acme sk=USER#bob
        pk=ORG#acme sk=USER#cy
        -> pk=TENANT#acme sk=USER#cy
      estimated 8 WCU, unthrottled (no write budget set: as fast as the table takes it)
",
    );
    assert_has(&r.stdout, "-/+ replace (the new form is written before the old one is deleted)");
    assert_has(&r.stdout, "Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy.");
}

#[tokio::test]
async fn entities_added_and_removed() {
    let both = users_and_projects();
    let users_only = design(&[<base::User as singletable::Item>::DESIGN]);
    let t = table(&users_only, &[user("ann", "a@x")], true).await;
    let r = plan(&t, &both, &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(&r.stdout, "  + add entity Project\n");
    assert_has(&r.stdout, "Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy.");

    let t = table(&both, &[user("ann", "a@x")], true).await;
    let r = plan(&t, &users_only, &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(&r.stdout, "  - destroy entity Project: its items are deleted (exported first)\n      Project: 1 item, 1 to delete\n        pk=ORG#acme sk=PROJECT#p1\n        -> (deleted)\n");
    assert_has(&r.stdout, "Plan: 0 to add, 0 to change, 0 to replace, 1 to destroy.");
}

#[tokio::test]
async fn a_missing_attribute_is_an_error_until_a_default_is_given() {
    let old = design(&[<base::User as singletable::Item>::DESIGN]);
    let new = design(&[<regional::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x"), user("bob", "b@x")], true).await;
    let r = plan(&t, &new, &[]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_has(&r.stdout, "      error: 2 of 2 items lack `region`, which the new key `sk` needs (e.g. pk=ORG#acme sk=USER#ann); give a value with --default User.region=VALUE, or write the attribute first\n");
    assert_has(&r.stdout, "Error: apply will refuse this plan: 1 problem above must be resolved first.");

    let r = plan(&t, &new, &["--default", "User.region=eu"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(&r.stdout, "        pk=ORG#acme sk=USER#ann\n        -> pk=ORG#acme sk=R#eu#USER#ann\n");

    let r = plan(&t, &new, &["--default", "User.nope=eu"]).await;
    assert_eq!(r.code, 1);
    assert_has(&r.stderr, "Error: --default User.nope=eu: `nope` is not in a key template of User");
}

#[tokio::test]
async fn a_collision_is_an_error() {
    let old = design(&[<base::User as singletable::Item>::DESIGN]);
    let new = design(&[<by_email::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "same@x"), user("bob", "same@x"), user("cy", "cy@x")], true).await;
    let out = tmp(&format!("{}-refused.json", t.name()));
    let r = plan(&t, &new, &["--out", out.to_str().unwrap()]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_has(&r.stdout, "      error: 1 key collision (apply would overwrite items): pk=ORG#acme sk=USER#ann, pk=ORG#acme sk=USER#bob would all become pk=ORG#acme sk=USER#same@x\n");
    assert_has(&r.stderr, "the plan was not saved");
    assert!(!out.exists());
}

#[tokio::test]
async fn a_saved_plan_reads_back_and_json_output_parses() {
    let old = users_and_projects();
    let new = design(&[<moved::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x")], true).await;
    let out = tmp(&format!("{}-plan.json", t.name()));
    let r = plan(&t, &new, &["--out", out.to_str().unwrap()]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let saved: Plan = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_has(&r.stdout, &format!("Saved the plan to {} (fingerprint {}).", out.display(), saved.fingerprint));
    assert_eq!(saved.table, t.name());
    assert_eq!(saved.to.table, t.name());
    assert_eq!(saved.fingerprint.len(), 16);
    assert!(matches!(&saved.changes[..], [Change::Rewrite(r)] if r.entity == "User" && r.table_key.is_some()), "{:?}", saved.changes);
    let u = saved.entities.iter().find(|e| e.entity == "User").unwrap();
    assert_eq!((u.items, u.changing, u.write_units), (1, 1, 2));
    assert_eq!(singletable_migrate::render::render_plan(&saved), r.stdout.split("\nSaved the plan").next().unwrap());

    // --json prints the same plan; the same table state, the same fingerprint.
    let r = plan(&t, &new, &["--json"]).await;
    assert_eq!(r.code, 2);
    let printed: Plan = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(printed, saved);

    // An application write does not make the plan stale: the table is live.
    t.put(&user("bob", "b@x")).await.unwrap();
    let r = plan(&t, &new, &["--json"]).await;
    let later: Plan = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(later.fingerprint, saved.fingerprint);
}

#[tokio::test]
async fn an_unmanaged_table_needs_from_and_unknown_items_are_warned_about() {
    let d = users_and_projects();
    let t = table(&d, &[user("ann", "a@x")], false).await;
    let r = plan(&t, &d, &[]).await;
    assert_eq!(r.code, 1);
    assert_has(&r.stderr, &format!("Error: table `{}` has no recorded design: give the design it was built with (--from FILE)", t.name()));

    // An item of a type neither design knows.
    let mut stray = std::collections::HashMap::new();
    for (k, v) in [("pk", "ORG#acme"), ("sk", "LEGACY#1"), ("_et", "Legacy")] {
        stray.insert(k.to_string(), singletable::AttributeValue::S(v.into()));
    }
    t.client().put_item().table_name(t.name()).set_item(Some(stray)).send().await.unwrap();
    let from = tmp(&format!("{}-old.json", t.name()));
    std::fs::write(&from, d.to_json()).unwrap();
    let r = plan(&t, &d, &["--from", from.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "No changes. The table matches the design.\n\nWarning: 1 item of entity type `Legacy`, which neither design knows; apply leaves them as they are\n"
    );
}

#[tokio::test]
async fn a_table_that_does_not_exist_is_created() {
    let d = users_and_projects();
    let path = tmp("cli-plan-create.json");
    std::fs::write(&path, d.to_json()).unwrap();
    let name = unique_table_name("cli-plan-missing");
    let r = run(["migrate", "plan", "--design", path.to_str().unwrap(), "--table", &name, "--detailed-exitcode"].map(String::from).to_vec()).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(&r.stdout, &format!("  + create table {name}\n  + add entity User\n  + add entity Project\n"));
    assert_has(&r.stdout, "Plan: 3 to add, 0 to change, 0 to replace, 0 to destroy.");
}

#[tokio::test]
async fn a_key_schema_change_copies_to_a_new_table() {
    let old = design(&[<base::User as singletable::Item>::DESIGN]);
    let mut new = design(&[<rekeyed::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x"), user("bob", "b@x")], true).await;
    new.table = format!("{}-v2", t.name());
    let r = plan(&t, &new, &[]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_has(
        &r.stdout,
        &format!(
            "-/+ copy table {0} -> {0}-v2: base key schema (pk, sk) -> (PK, SK)\n      User: 2 items, 2 to copy\n        pk=ORG#acme sk=USER#ann\n        -> PK=ORG#acme SK=USER#ann\n",
            t.name()
        ),
    );
    // The same table name cannot change its key schema.
    new.table = t.name().to_string();
    let path = tmp(&format!("{}-same.json", t.name()));
    std::fs::write(&path, new.to_json()).unwrap();
    let r = run(["migrate", "plan", "--design", path.to_str().unwrap()].map(String::from).to_vec()).await;
    assert_eq!(r.code, 1);
    assert_has(&r.stderr, "cannot change in place; give the new design another table name to copy into");
}

#[tokio::test]
async fn usage_errors_exit_1() {
    let r = run(vec!["migrate".into(), "frobnicate".into()]).await;
    assert_eq!(r.code, 1);
    let r = run(vec!["migrate".into(), "plan".into(), "--help".into()]).await;
    assert_eq!(r.code, 0);
    assert_has(&r.stdout, "--detailed-exitcode");
}

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

async fn scan_count(t: &Table, entity: &str) -> usize {
    let out = t.client().scan().table_name(t.name()).consistent_read(true).send().await.unwrap();
    out.items().iter().filter(|i| i.get("_et").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(entity)).count()
}

#[tokio::test]
async fn a_saved_plan_applies_without_asking_and_only_once() {
    let old = users_and_projects();
    let new = design(&[<moved::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x"), user("bob", "b@x")], true).await;
    let saved = tmp(&format!("{}-plan.json", t.name()));
    let r = plan(&t, &new, &["--out", &saved.display().to_string()]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);

    let r = run(strs(&["migrate", "apply", &saved.display().to_string(), "--offline"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_has(&r.stdout, "Apply complete! Items: 2 moved, 0 updated in place, 0 deleted");
    assert_has(&r.stdout, "Verified: every item conforms to the new design (Project 1, User 2).");
    assert_has(&r.stderr, "rewrite items (parallel scan)");
    let moved = t.client().get_item().table_name(t.name())
        .key("pk", singletable::AttributeValue::S("TENANT#acme".into()))
        .key("sk", singletable::AttributeValue::S("USER#ann".into()))
        .send().await.unwrap();
    assert!(moved.item.is_some());

    let r = plan(&t, &new, &[]).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_has(&r.stdout, "No changes.");
    let r = run(strs(&["migrate", "apply", &saved.display().to_string(), "--offline"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_has(&r.stderr, "already records this plan's design: the plan was applied; nothing to do");
}

#[tokio::test]
async fn apply_without_a_plan_asks_first() {
    let new = design(&[<reindexed::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let indexed_old = design(&[<indexed::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let t = table(&indexed_old, &[user("ann", "a@x")], true).await;
    let path = tmp(&format!("{}-new.json", t.name()));
    std::fs::write(&path, new.to_json()).unwrap();
    let args = strs(&["migrate", "apply", "--design", &path.display().to_string(), "--table", t.name(), "--offline"]);
    let r = run_on_terminal(args.clone(), "no\n").await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_has(&r.stdout, "Do you want to perform these actions?");
    assert_has(&r.stdout, "Apply cancelled.");
    let r = run_on_terminal(args, "yes\n").await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_has(&r.stdout, "Apply complete! Items: 0 moved, 1 updated in place");
    let item = t.client().get_item().table_name(t.name())
        .key("pk", singletable::AttributeValue::S("ORG#acme".into()))
        .key("sk", singletable::AttributeValue::S("USER#ann".into()))
        .send().await.unwrap().item.unwrap();
    assert_eq!(item["gsi1pk"].as_s().unwrap(), "MAIL#a@x");
}

#[tokio::test]
async fn a_destroyed_entity_is_exported_and_restored() {
    let old = users_and_projects();
    let new = design(&[<base::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x")], true).await;
    let path = tmp(&format!("{}-new.json", t.name()));
    std::fs::write(&path, new.to_json()).unwrap();
    let dir = tmp(&format!("{}-exports", t.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = strs(&["migrate", "apply", "--design", &path.display().to_string(), "--table", t.name(), "--auto-approve", "--offline"]);
    let r = run(base.clone()).await;
    assert_eq!(r.code, 1);
    assert_has(&r.stderr, "--allow-destroy");
    assert_eq!(scan_count(&t, "Project").await, 1, "nothing destroyed without permission");

    let mut args = base;
    args.extend(strs(&["--allow-destroy", "--export-dir", &dir.display().to_string()]));
    let r = run(args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_has(&r.stdout, "1 deleted");
    assert_eq!(scan_count(&t, "Project").await, 0);
    let export = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    assert_has(&r.stdout, &format!("singletable migrate restore {}", export.display()));

    let r = run(strs(&["migrate", "restore", &export.display().to_string(), "--table", t.name()])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_has(&r.stdout, "Restored 1 items");
    assert_eq!(scan_count(&t, "Project").await, 1);

    // Again (puts of the same items), reported as JSON lines.
    let r = run(strs(&["migrate", "restore", &export.display().to_string(), "--table", t.name(), "--json"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    let types: Vec<&str> = lines.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["step", "progress", "summary"]);
    // Counted against the file's lines, never past them.
    assert_eq!((lines[1]["progress"]["scanned"].as_u64(), lines[1]["progress"]["written"].as_u64()), (Some(1), Some(1)));
    assert_eq!(lines[1]["progress"]["estimated_items"].as_u64(), Some(1));
    assert_eq!(lines[2]["summary"]["restored"], 1);
    assert_eq!(scan_count(&t, "Project").await, 1);
}

#[tokio::test]
async fn a_key_schema_change_is_applied_as_a_copy_with_cut_over_steps() {
    let old = design(&[<base::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x"), user("bob", "b@x")], true).await;
    let mut new = design(&[<rekeyed::User as singletable::Item>::DESIGN]);
    new.table = format!("{}-v2", t.name());
    let path = tmp(&format!("{}-new.json", t.name()));
    std::fs::write(&path, new.to_json()).unwrap();
    let r = run(strs(&["migrate", "apply", "--design", &path.display().to_string(), "--table", t.name(), "--auto-approve"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_has(&r.stdout, "2 moved");
    assert_has(&r.stdout, "Cut-over:");
    let copy = t.client().get_item().table_name(&new.table)
        .key("PK", singletable::AttributeValue::S("ORG#acme".into()))
        .key("SK", singletable::AttributeValue::S("USER#bob".into()))
        .send().await.unwrap().item.unwrap();
    assert_eq!(copy["email"].as_s().unwrap(), "b@x");
    assert!(!copy.contains_key("pk"), "old key attributes are not carried over");
    assert_eq!(scan_count(&t, "User").await, 2, "the source table is left as it was");
}

/// Standard output's lines, each parsed as the JSON object it must be,
/// with the fields every report line carries.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            for field in ["@level", "@message", "@timestamp", "type"] {
                assert!(v[field].is_string(), "no {field} in {line}");
            }
            v
        })
        .collect()
}

#[tokio::test]
async fn apply_json_reports_plan_steps_progress_and_summary_as_lines() {
    let old = design(&[<indexed::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let new = design(&[<reindexed::User as singletable::Item>::DESIGN, <base::Project as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x"), user("bob", "b@x")], true).await;
    let path = tmp(&format!("{}-new.json", t.name()));
    std::fs::write(&path, new.to_json()).unwrap();
    let args = strs(&["migrate", "apply", "--design", &path.display().to_string(), "--table", t.name(), "--offline", "--json"]);

    // Standard output carries the lines: nowhere to ask.
    let r = run(args.clone()).await;
    assert_eq!(r.code, 1);
    let lines = json_lines(&r.stdout);
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!((lines[0]["type"].as_str(), lines[0]["@level"].as_str()), (Some("error"), Some("error")));
    assert_has(lines[0]["@message"].as_str().unwrap(), "--auto-approve");

    let r = run([args, strs(&["--auto-approve"])].concat()).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    let types: Vec<&str> = lines.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"plan"), "{types:?}");
    assert_eq!(types.last(), Some(&"summary"), "{types:?}");
    assert!(types.iter().all(|t| ["plan", "step", "progress", "warning", "message", "summary"].contains(t)), "{types:?}");

    let plan = &lines[0];
    assert_eq!(plan["@message"], "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
    assert_eq!(plan["plan"]["table"], t.name());
    let steps: Vec<&serde_json::Value> = lines.iter().filter(|v| v["type"] == "step").map(|v| &v["step"]).collect();
    assert!(steps.iter().any(|s| s["text"] == "rewrite items (parallel scan)"), "{steps:?}");
    assert!(steps.iter().all(|s| s["number"].as_u64().unwrap() <= s["total"].as_u64().unwrap()), "{steps:?}");
    let progress = lines.iter().rev().find(|v| v["type"] == "progress" && v["progress"]["scanned"].is_u64()).expect("a backfill progress line");
    assert_eq!((progress["progress"]["scanned"].as_u64(), progress["progress"]["written"].as_u64()), (Some(3), Some(2)));
    // The verification counts the items it checked (the toolkit's own
    // items are not among them), against the plan's count.
    let verified = lines.iter().rev().find(|v| v["type"] == "progress" && v["progress"]["checked"].is_u64()).expect("a verification progress line");
    assert_eq!((verified["progress"]["checked"].as_u64(), verified["progress"]["estimated_items"].as_u64()), (Some(3), Some(3)));
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!((summary["updated"].as_u64(), summary["moved"].as_u64(), summary["scanned"].as_u64()), (Some(2), Some(0), Some(3)));
    assert_eq!(summary["verification"]["counts"], serde_json::json!({"Project": 1, "User": 2}));
    assert_eq!(summary["verification"]["problems"], serde_json::json!([]));
    assert!(!r.stderr.contains("items scanned"), "progress goes to the JSON lines only:\n{}", r.stderr);
}

#[tokio::test]
async fn without_a_terminal_apply_asks_for_auto_approve() {
    let old = design(&[<indexed::User as singletable::Item>::DESIGN]);
    let new = design(&[<reindexed::User as singletable::Item>::DESIGN]);
    let t = table(&old, &[user("ann", "a@x")], true).await;
    let path = tmp(&format!("{}-new.json", t.name()));
    std::fs::write(&path, new.to_json()).unwrap();
    // A "yes" on a pipe is no answer: it may come from anything.
    let r = run_with_input(strs(&["migrate", "apply", "--design", &path.display().to_string(), "--table", t.name(), "--offline"]), "yes\n").await;
    assert_eq!(r.code, 1);
    assert_has(&r.stdout, "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
    assert_has(&r.stderr, "Error: cannot ask whether to apply: standard input is not a terminal; pass --auto-approve");
    let item = t.client().get_item().table_name(t.name())
        .key("pk", singletable::AttributeValue::S("ORG#acme".into()))
        .key("sk", singletable::AttributeValue::S("USER#ann".into()))
        .send().await.unwrap().item.unwrap();
    assert_eq!(item["gsi1pk"].as_s().unwrap(), "EMAIL#a@x", "nothing applied");
}

/// The binary with no AWS configuration at all but `env`: no region, no
/// credentials, no profile files, no instance metadata.
fn bare(args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = tmp("cli-empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_singletable"))
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let r = Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8(out.stdout).unwrap(), stderr: String::from_utf8(out.stderr).unwrap() };
    eprintln!("$ singletable {}\n{}{}(exit {})", args.join(" "), r.stdout, r.stderr, r.code);
    r
}

#[test]
fn missing_region_and_credentials_say_what_to_set() {
    let nowhere = ["migrate", "status", "--table", "t", "--endpoint-url", "http://127.0.0.1:9"];
    let r = bare(&nowhere, &[]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: no AWS region is configured: pass --region REGION (e.g. --region us-east-1) or set AWS_REGION, or set `region` \
         in ~/.aws/config (or name a profile that has one: --profile NAME)\n"
    );

    let r = bare(&[&nowhere[..], &["--region", "us-east-1"]].concat(), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("Error: DescribeTable on table `t` failed: no AWS credentials were found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a profile with credentials (--profile NAME or AWS_PROFILE)"), "{}", r.stderr);
    assert!(!r.stderr.contains("DispatchFailure"), "the SDK's text waits for -v:\n{}", r.stderr);

    let r = bare(&[&nowhere[..], &["--region", "us-east-1", "-v"]].concat(), &[]);
    assert_has(&r.stderr, "DispatchFailure");
    assert_has(&r.stderr, "no AWS credentials were found");

    let keys = [("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local"), ("AWS_REGION", "us-east-1")];
    let r = bare(&nowhere, &keys);
    assert_eq!(r.code, 1);
    assert_has(&r.stderr, "Error: DescribeTable on table `t` failed: cannot reach DynamoDB at http://127.0.0.1:9. Check the network, or the endpoint: --endpoint-url URL");
}

#[tokio::test]
async fn the_endpoint_flag_wins_over_the_environment() {
    let d = users_and_projects();
    let t = table(&d, &[user("ann", "a@x")], true).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_singletable"));
    local_aws(&mut command).await;
    let args = strs(&["migrate", "status", "--table", t.name(), "--endpoint-url", &endpoint().await]);
    command.args(&args).env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9");
    let r = output(command, "", &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("Table `{}`:\nlock: free\nno online apply in progress\nbackfill: no checkpoints\n", t.name()));
}

#[test]
fn completions_print_for_bash() {
    let r = bare(&["completions", "bash"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("_singletable() {"), "{}", &r.stdout[..r.stdout.len().min(200)]);
    for needle in ["complete -F _singletable", "--endpoint-url", "--auto-approve", "migrate", "restore"] {
        assert_has(&r.stdout, needle);
    }
    assert_eq!(bare(&["completions", "nosuchshell"], &[]).code, 1);
}

#[test]
fn design_show_json_prints_the_design() {
    let d = users_and_projects();
    let path = tmp("cli-show-json.json");
    std::fs::write(&path, d.to_json()).unwrap();
    let r = bare(&["design", "show", "--json", "--design", path.to_str().unwrap()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(TableDesign::from_json(&r.stdout).unwrap(), d);
}
