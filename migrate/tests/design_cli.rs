//! `singletable design show | export | import | iam`, end to end through
//! the built binary. No DynamoDB needed: these commands read files only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use singletable::{StreamView, TableDesign};

#[derive(singletable::Item, Debug, Clone)]
#[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
pub struct User {
    pub org_id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
}

#[derive(singletable::Item, Debug, Clone)]
#[item(entity = "Task", pk = "ORG#{org_id}", sk = "TASK#{project_id}#{number:06}")]
#[item(index(name = "gsi2", pk = "ASSIGNEE#{assignee}", sk = "DUE#{due}|{number:06}"))]
pub struct Task {
    pub org_id: String,
    pub project_id: String,
    pub number: u64,
    pub assignee: Option<String>,
    pub due: String,
    pub done: bool,
}

fn design() -> TableDesign {
    TableDesign::new("tracker")
        .entity::<User>()
        .entity::<Task>()
        .stream(StreamView::NewImage)
        .build()
        .unwrap()
}

/// A fresh directory for one test's files.
fn workdir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("singletable-design-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_design(dir: &Path) -> PathBuf {
    let path = dir.join("design.json");
    std::fs::write(&path, design().to_json()).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_singletable"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .expect("run singletable")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}\n{}", stderr(&out), stdout(&out));
    out
}

#[test]
fn show_draws_the_design() {
    let dir = workdir("show");
    let file = write_design(&dir);
    let text = stdout(&ok(&["design", "show", "--design", file.to_str().unwrap()]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "entity  pk            sk                             gsi1pk (gsi1)  gsi1sk (gsi1)  gsi2pk (gsi2)        gsi2sk (gsi2)"
    );
    assert!(lines[1].starts_with("------  ------------  ---"), "{text}");
    assert_eq!(lines[2], "User    ORG#{org_id}  USER#{user_id}                 EMAIL#{email}  USER");
    assert_eq!(
        lines[3],
        "Task    ORG#{org_id}  TASK#{project_id}#{number:06}                                ASSIGNEE#{assignee}  DUE#{due}|{number:06}"
    );
    assert!(text.contains("Index gsi2 is sparse for Task: items without assignee are left out of it."), "{text}");
    assert!(text.contains("Every item stores its entity name in _et."), "{text}");
    assert!(text.contains("Stream: on, NEW_IMAGE."), "{text}");
    assert!(text.contains("  Task  org_id S, project_id S, number N, assignee? S, due S, done BOOL"), "{text}");
}

#[test]
fn show_markdown_is_a_pipe_table() {
    let dir = workdir("markdown");
    let file = write_design(&dir);
    let md = stdout(&ok(&["design", "show", "--markdown", "--design", file.to_str().unwrap()]));
    assert!(md.starts_with("### Table `tracker`\n\n| Entity | pk | sk | gsi1pk (gsi1) | gsi1sk (gsi1) | gsi2pk (gsi2) | gsi2sk (gsi2) |\n| --- | --- | --- | --- | --- | --- | --- |\n"), "{md}");
    assert!(md.contains("| Task | `ORG#{org_id}` | `TASK#{project_id}#{number:06}` | | | `ASSIGNEE#{assignee}` | `DUE#{due}\\|{number:06}` |\n"), "{md}");
    assert!(md.contains("- Index `gsi2` is sparse for Task: items without `assignee` are left out of it.\n"), "{md}");
}

#[test]
fn workbench_export_then_import_round_trips() {
    let dir = workdir("workbench");
    let file = write_design(&dir);
    let model_path = dir.join("model.json");
    let out = ok(&[
        "design", "export", "--workbench", "--design", file.to_str().unwrap(), "--out", model_path.to_str().unwrap(),
        "--samples", "4", "--author", "Ann",
    ]);
    assert!(stderr(&out).contains("Wrote the NoSQL Workbench model to"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    assert_eq!(model["ModelName"], "tracker");
    assert_eq!(model["ModelMetadata"]["Author"], "Ann");
    assert_eq!(model["ModelMetadata"]["DateCreated"], "Jan 01, 2026, 12:00 AM");
    assert_eq!(model["ModelMetadata"]["Version"], "3.0");
    let table = &model["DataModel"][0];
    let facets: Vec<&str> = table["TableFacets"].as_array().unwrap().iter().map(|f| f["FacetName"].as_str().unwrap()).collect();
    assert_eq!(facets, ["User", "Task"]);
    assert_eq!(table["TableFacets"][1]["KeyAttributeAlias"]["SortKeyAlias"], "TASK#{project_id}#{number:06}");
    assert_eq!(table["TableData"].as_array().unwrap().len(), 8);
    assert_eq!(table["TableFacets"][1]["TableData"][0]["gsi2sk"], serde_json::json!({ "S": "DUE#due-1|000001" }));
    // Half the tasks have no assignee: they are not in the sparse index.
    let in_gsi2 = table["TableFacets"][1]["TableData"].as_array().unwrap().iter().filter(|i| i.get("gsi2pk").is_some()).count();
    assert_eq!(in_gsi2, 2);

    // The same model on standard output.
    let printed = stdout(&ok(&["design", "export", "--workbench", "--design", file.to_str().unwrap(), "--samples", "4", "--author", "Ann"]));
    assert_eq!(printed, std::fs::read_to_string(&model_path).unwrap());

    let back_path = dir.join("back.json");
    let out = ok(&["design", "import", "--workbench", model_path.to_str().unwrap(), "--out", back_path.to_str().unwrap()]);
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
    let back = TableDesign::from_json(&std::fs::read_to_string(&back_path).unwrap()).unwrap();
    let original = design();
    assert_eq!(back.entities, original.entities);
    assert_eq!(back.indexes, original.indexes);
    assert_eq!(back.settings, original.settings);
    assert_eq!(back.to_json(), original.to_json());
}

#[test]
fn import_warns_about_what_it_guessed() {
    let dir = workdir("import-warn");
    let model = dir.join("hand-made.json");
    std::fs::write(
        &model,
        r#"{
  "ModelName": "m",
  "ModelMetadata": { "Author": "", "DateCreated": "", "DateLastModified": "", "Description": "", "AWSService": "Amazon DynamoDB", "Version": "3.0" },
  "DataModel": [{
    "TableName": "songs",
    "KeyAttributes": { "PartitionKey": { "AttributeName": "PK", "AttributeType": "S" }, "SortKey": { "AttributeName": "SK", "AttributeType": "S" } },
    "NonKeyAttributes": [ { "AttributeName": "Title", "AttributeType": "S" } ],
    "TableFacets": [{
      "FacetName": "Song",
      "KeyAttributeAlias": { "PartitionKeyAlias": "SongId", "SortKeyAlias": "{Title" },
      "NonKeyAttributes": ["Title"]
    }]
  }]
}"#,
    )
    .unwrap();
    let out = ok(&["design", "import", "--workbench", model.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("Warning: facet `Song`: `PK` alias `SongId`"), "{err}");
    assert!(err.contains("Warning: facet `Song`: `SK` alias `{Title` is not a template"), "{err}");
    let design = TableDesign::from_json(&stdout(&out)).unwrap();
    assert_eq!(design.entities[0].sk.template.source, "{{Title");
    assert_eq!(design.entities[0].entity_attr, "_et");
}

#[test]
fn iam_prints_a_policy() {
    let dir = workdir("iam");
    let file = write_design(&dir);
    let out = ok(&["design", "iam", "--design", file.to_str().unwrap(), "--region", "eu-west-1", "--account", "123456789012", "--migrate"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let policy: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
    let sids: Vec<&str> = policy["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap()).collect();
    assert_eq!(sids, ["SingletableItems", "SingletableIndexes", "SingletableStream", "SingletableMigrate"]);
    let table = "arn:aws:dynamodb:eu-west-1:123456789012:table/tracker";
    assert_eq!(policy["Statement"][0]["Resource"], table);
    assert_eq!(
        policy["Statement"][1]["Resource"],
        serde_json::json!([format!("{table}/index/gsi1"), format!("{table}/index/gsi2")])
    );
    assert_eq!(policy["Statement"][2]["Resource"], format!("{table}/stream/*"));
    assert!(policy["Statement"][3]["Action"].as_array().unwrap().contains(&serde_json::json!("dynamodb:UpdateTable")));

    let out = ok(&["design", "iam", "--design", file.to_str().unwrap(), "--read-only"]);
    assert!(stderr(&out).contains("any region and account"), "{}", stderr(&out));
    let policy: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(policy["Statement"][0]["Resource"], "arn:aws:dynamodb:*:*:table/tracker");
    assert!(!stdout(&out).contains("PutItem"));

    let out = ok(&["design", "iam", "--design", file.to_str().unwrap(), "--table-arn", "arn:aws:dynamodb:us-east-1:123456789012:table/tracker-prod"]);
    assert!(stdout(&out).contains("\"arn:aws:dynamodb:us-east-1:123456789012:table/tracker-prod/index/gsi2\""));
}

#[test]
fn design_commands_fail_clearly() {
    let out = run(&["design", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no design given: pass --design FILE"), "{}", stderr(&out));
    let out = run(&["design", "export", "--design", "x.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--workbench"), "{}", stderr(&out));
    let out = run(&["design", "show", "--design", "/nonexistent/design.json"]);
    assert_eq!(out.status.code(), Some(1));
    let dir = workdir("fail");
    let file = write_design(&dir);
    let out = run(&["design", "iam", "--design", file.to_str().unwrap(), "--table-arn", "arn:aws:s3:::bucket"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a DynamoDB table ARN"), "{}", stderr(&out));
    let not_a_model = dir.join("not-a-model.json");
    std::fs::write(&not_a_model, "[1, 2]").unwrap();
    let out = run(&["design", "import", "--workbench", not_a_model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a NoSQL Workbench data model"), "{}", stderr(&out));
}

/// A published NoSQL Workbench model (see tests/fixtures/workbench/README.md).
fn published_model(file: &str) -> String {
    format!("{}/tests/fixtures/workbench/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn import_reads_a_published_model_end_to_end() {
    // AWS's gaming-profile model: aliases written without braces
    // (`ITEMS#ItemID`), a typo in one alias and one sample key, malformed
    // sample values, entity types that differ from the facet names.
    let dir = workdir("import-published");
    let design_path = dir.join("game.json");
    let model = published_model("GamePlayerProfilesSchema.json");
    let out = ok(&["design", "import", "--workbench", &model, "--out", design_path.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("Warning: facet `Items`: `ItemAttributes` is not typed DynamoDB JSON in sample item(s) 1, 2, 3"), "{err}");
    assert!(err.contains("Warning: facet `Items` (entity `Item`): `SK` alias `ITEMS#ItemID` read as the template `ITEMS#{ItemID}`"), "{err}");
    let design = TableDesign::from_json(&std::fs::read_to_string(&design_path).unwrap()).unwrap();
    assert_eq!(design.table, "game-player-profiles");
    let keys: Vec<(&str, &str, &str)> =
        design.entities.iter().map(|e| (e.entity.as_ref(), e.pk.template.source.as_ref(), e.sk.template.source.as_ref())).collect();
    assert_eq!(
        keys,
        [
            ("Metadata", "{playerID}", "#METADATA#{playerID}"),
            ("Friends", "{playerID}", "FRIENDS#{playerID}"),
            ("Item", "{playerID}", "ITEMS#{ItemID}"),
            ("Equipment", "{playerID}", "EQUIPMENTS#{EquipID}"),
            ("Task", "{playerID}", "TASK#{TaskID}"),
            ("Activity", "{playerID}", "ACTIVITY#{ActivityID}"),
        ]
    );
    // The imported design works with the other commands.
    let shown = stdout(&ok(&["design", "show", "--design", design_path.to_str().unwrap()]));
    assert!(shown.contains("Every item stores its entity name in Type."), "{shown}");
    ok(&["design", "export", "--workbench", "--design", design_path.to_str().unwrap(), "--out", dir.join("back.json").to_str().unwrap()]);

    // Format 1.0, no facets: entities by their entity-type attribute.
    let shop = stdout(&ok(&["design", "import", "--workbench", &published_model("AnOnlineShop_14.json")]));
    let shop = TableDesign::from_json(&shop).unwrap();
    assert_eq!(shop.entities.len(), 9);
    assert_eq!(shop.entity("orderItem").unwrap().index("GSI1").unwrap().pk.template.source, "p#{p_id}");
}

#[test]
fn import_refuses_a_model_that_cannot_work() {
    // Two facets with the same constant keys would overwrite each other's item.
    let out = run(&["design", "import", "--workbench", &published_model("GamePlayerProfiles_constant_keys.json")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("have the same constant keys"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}
