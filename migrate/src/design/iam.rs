//! `singletable design iam`: a least-privilege IAM policy for the table
//! of a design and its indexes.
//!
//! Statements, each on the narrowest resources DynamoDB authorizes:
//!
//! | Sid | actions | resources |
//! | --- | --- | --- |
//! | `SingletableItems` | what `singletable::Table` sends: `GetItem`, `PutItem`, `UpdateItem`, `DeleteItem`, `Query`, `Scan`, `BatchGetItem`, `BatchWriteItem`, `ConditionCheckItem` (transactions are authorized per item action), `DescribeTable` | the table |
//! | `SingletableIndexes` | `Query`, `Scan` | each index of the design |
//! | `SingletableStream` | `DescribeStream`, `GetRecords`, `GetShardIterator`, `ListStreams` (only when the design has a stream) | the table's streams (`table/NAME/stream/*`) |
//! | `SingletableMigrate` | with `migrate`: `CreateTable`, `UpdateTable`, `DescribeTimeToLive`, `UpdateTimeToLive`, `DescribeContinuousBackups`, `UpdateContinuousBackups` | the table |
//!
//! `read_only` keeps the reads: `GetItem`, `BatchGetItem`, `Query`,
//! `Scan`, `DescribeTable` (and, with `migrate`, the two `Describe*`
//! actions `singletable migrate plan` needs — a read-only migrate policy
//! is a plan-only policy).

use serde::Serialize;
use singletable::TableDesign;

/// Where the table lives: the parts of its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableArn {
    /// `aws`, `aws-cn`, `aws-us-gov` ...
    pub partition: String,
    /// A region, or `*`.
    pub region: String,
    /// A 12-digit account id, or `*`.
    pub account: String,
    /// The table name.
    pub table: String,
}

impl TableArn {
    /// An ARN from its parts; `None` region or account become `*`.
    pub fn new(partition: &str, region: Option<&str>, account: Option<&str>, table: &str) -> Result<TableArn, String> {
        let arn = TableArn {
            partition: partition.to_string(),
            region: region.unwrap_or("*").to_string(),
            account: account.unwrap_or("*").to_string(),
            table: table.to_string(),
        };
        arn.check()?;
        Ok(arn)
    }

    /// Reads `arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME`.
    pub fn parse(arn: &str) -> Result<TableArn, String> {
        let bad = || format!("`{arn}` is not a DynamoDB table ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME)");
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else { return Err(bad()) };
        if prefix != "arn" || service != "dynamodb" {
            return Err(bad());
        }
        let table = resource.strip_prefix("table/").filter(|t| !t.is_empty() && !t.contains('/')).ok_or_else(bad)?;
        let parsed = TableArn {
            partition: partition.into(),
            region: region.into(),
            account: account.into(),
            table: table.into(),
        };
        parsed.check()?;
        Ok(parsed)
    }

    fn check(&self) -> Result<(), String> {
        let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !word(&self.partition) {
            return Err(format!("`{}` is not an AWS partition (aws, aws-cn, aws-us-gov ...)", self.partition));
        }
        if self.region != "*" && !word(&self.region) {
            return Err(format!("`{}` is not an AWS region (e.g. eu-west-1)", self.region));
        }
        if self.account != "*" && !(self.account.len() == 12 && self.account.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("`{}` is not an AWS account id (12 digits)", self.account));
        }
        // DynamoDB table names: 3-255 of [A-Za-z0-9_.-].
        let t = &self.table;
        if t.len() < 3 || t.len() > 255 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Err(format!("`{t}` is not a DynamoDB table name (3 to 255 letters, digits, `_`, `-`, `.`)"));
        }
        Ok(())
    }

    /// The table's ARN.
    pub fn table_arn(&self) -> String {
        format!("arn:{}:dynamodb:{}:{}:table/{}", self.partition, self.region, self.account, self.table)
    }

    /// The ARN of one of its indexes.
    pub fn index_arn(&self, index: &str) -> String {
        format!("{}/index/{index}", self.table_arn())
    }

    /// The ARN of all its streams.
    pub fn streams_arn(&self) -> String {
        format!("{}/stream/*", self.table_arn())
    }
}

/// What the policy is for.
#[derive(Debug, Clone)]
pub struct IamOptions {
    /// The table (its name may differ from the design's: a stage's table).
    pub arn: TableArn,
    /// Reads only.
    pub read_only: bool,
    /// Add what `singletable migrate` needs beyond item access.
    pub migrate: bool,
}

/// An IAM policy document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: &'static str,
    pub effect: &'static str,
    pub action: Vec<String>,
    pub resource: Resource,
}

/// One resource or several.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Resource {
    One(String),
    Many(Vec<String>),
}

impl Policy {
    /// The policy as JSON, as `aws iam create-policy --policy-document`
    /// and Terraform's `aws_iam_policy` take it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("policies always serialize") + "\n"
    }
}

fn actions(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| format!("dynamodb:{n}")).collect();
    v.sort();
    v
}

/// The policy for the application (and, with `migrate`, the migrate tool)
/// working on the design's table. Pure.
pub fn policy(design: &TableDesign, opts: &IamOptions) -> Policy {
    let arn = &opts.arn;
    let allow = |sid, names: &[&str], resource| Statement { sid, effect: "Allow", action: actions(names), resource };
    let mut statement = Vec::new();
    let items: &[&str] = if opts.read_only {
        &["BatchGetItem", "DescribeTable", "GetItem", "Query", "Scan"]
    } else {
        &[
            "BatchGetItem", "BatchWriteItem", "ConditionCheckItem", "DeleteItem", "DescribeTable", "GetItem", "PutItem",
            "Query", "Scan", "UpdateItem",
        ]
    };
    statement.push(allow("SingletableItems", items, Resource::One(arn.table_arn())));
    if !design.indexes.is_empty() {
        let resources: Vec<String> = design.indexes.iter().map(|i| arn.index_arn(&i.name)).collect();
        let resource = match <[String; 1]>::try_from(resources) {
            Ok([one]) => Resource::One(one),
            Err(many) => Resource::Many(many),
        };
        statement.push(allow("SingletableIndexes", &["Query", "Scan"], resource));
    }
    if design.settings.stream.is_some() {
        statement.push(allow(
            "SingletableStream",
            &["DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"],
            Resource::One(arn.streams_arn()),
        ));
    }
    if opts.migrate {
        let extra: &[&str] = if opts.read_only {
            &["DescribeContinuousBackups", "DescribeTimeToLive"]
        } else {
            &[
                "CreateTable", "DescribeContinuousBackups", "DescribeTimeToLive", "UpdateContinuousBackups", "UpdateTable",
                "UpdateTimeToLive",
            ]
        };
        statement.push(allow("SingletableMigrate", extra, Resource::One(arn.table_arn())));
    }
    Policy { version: "2012-10-17", statement }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::fixtures;

    fn arn() -> TableArn {
        TableArn::new("aws", Some("eu-west-1"), Some("123456789012"), "app").unwrap()
    }

    #[test]
    fn application_policy_golden() {
        let p = policy(&fixtures::design(), &IamOptions { arn: arn(), read_only: false, migrate: false });
        let expected = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "SingletableItems",
      "Effect": "Allow",
      "Action": [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:UpdateItem"
      ],
      "Resource": "arn:aws:dynamodb:eu-west-1:123456789012:table/app"
    },
    {
      "Sid": "SingletableIndexes",
      "Effect": "Allow",
      "Action": [
        "dynamodb:Query",
        "dynamodb:Scan"
      ],
      "Resource": [
        "arn:aws:dynamodb:eu-west-1:123456789012:table/app/index/gsi1",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/app/index/gsi2"
      ]
    },
    {
      "Sid": "SingletableStream",
      "Effect": "Allow",
      "Action": [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams"
      ],
      "Resource": "arn:aws:dynamodb:eu-west-1:123456789012:table/app/stream/*"
    }
  ]
}
"#;
        assert_eq!(p.to_json(), expected, "\n{}", p.to_json());
    }

    #[test]
    fn read_only_migrate_policy_golden() {
        let arn = TableArn::parse("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/tiny-prod").unwrap();
        let p = policy(&fixtures::small(), &IamOptions { arn, read_only: true, migrate: true });
        let expected = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "SingletableItems",
      "Effect": "Allow",
      "Action": [
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan"
      ],
      "Resource": "arn:aws-cn:dynamodb:cn-north-1:123456789012:table/tiny-prod"
    },
    {
      "Sid": "SingletableMigrate",
      "Effect": "Allow",
      "Action": [
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:DescribeTimeToLive"
      ],
      "Resource": "arn:aws-cn:dynamodb:cn-north-1:123456789012:table/tiny-prod"
    }
  ]
}
"#;
        assert_eq!(p.to_json(), expected, "\n{}", p.to_json());
    }

    #[test]
    fn migrate_adds_table_management() {
        let p = policy(&fixtures::small(), &IamOptions { arn: arn(), read_only: false, migrate: true });
        let migrate = p.statement.iter().find(|s| s.sid == "SingletableMigrate").unwrap();
        assert_eq!(
            migrate.action,
            [
                "dynamodb:CreateTable", "dynamodb:DescribeContinuousBackups", "dynamodb:DescribeTimeToLive",
                "dynamodb:UpdateContinuousBackups", "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive",
            ]
        );
        assert_eq!(migrate.resource, Resource::One("arn:aws:dynamodb:eu-west-1:123456789012:table/app".into()));
        // No index, no stream: no statements for them.
        assert_eq!(p.statement.len(), 2);
    }

    #[test]
    fn arns_are_checked() {
        assert_eq!(TableArn::new("aws", None, None, "app").unwrap().table_arn(), "arn:aws:dynamodb:*:*:table/app");
        assert_eq!(arn().index_arn("gsi1"), "arn:aws:dynamodb:eu-west-1:123456789012:table/app/index/gsi1");
        for bad in [
            "arn:aws:s3:::bucket",
            "arn:aws:dynamodb:eu-west-1:123456789012:table/app/index/gsi1",
            "arn:aws:dynamodb:eu-west-1:123456789012:app",
            "arn:aws:dynamodb:eu-west-1:1234:table/app",
            "arn:aws:dynamodb:EU:123456789012:table/app",
            "arn:aws:dynamodb:eu-west-1:123456789012:table/a",
        ] {
            assert!(TableArn::parse(bad).is_err(), "{bad}");
        }
        assert!(TableArn::new("aws", Some("eu-west-1"), Some("12345678901x"), "app").is_err());
    }
}
