//! The AWS side of the CLI: clients built from aws-config's default chain
//! (environment, profiles, SSO, instance roles ...) with `--profile`,
//! `--region` and `--endpoint-url` over it, and errors of that
//! configuration turned into what to set.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::Client;

use super::args::GlobalArgs;
use crate::error::MigrateError;

/// The AWS configuration the command line asks for.
pub struct Aws {
    config: SdkConfig,
    endpoint_url: Option<String>,
    profile: Option<String>,
}

impl Aws {
    /// Loads the default chain with the global flags over it. A missing
    /// region is an error here: left to the SDK it surfaces as a
    /// "dispatch failure" of the first request.
    pub async fn load(args: &GlobalArgs) -> Result<Aws, MigrateError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &args.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &args.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            let profile = args.profile.clone().or_else(|| std::env::var("AWS_PROFILE").ok());
            return Err(MigrateError::Other(format!(
                "no AWS region is configured: pass --region REGION (e.g. --region us-east-1) or set AWS_REGION{}",
                match profile {
                    Some(p) => format!(", or set `region` in profile `{p}` of ~/.aws/config"),
                    None => ", or set `region` in ~/.aws/config (or name a profile that has one: --profile NAME)".into(),
                }
            )));
        }
        Ok(Aws { config, endpoint_url: args.endpoint_url.clone(), profile: args.profile.clone() })
    }

    /// A DynamoDB client.
    pub fn dynamodb(&self) -> Client {
        dynamodb_client(&self.config, self.endpoint_url.as_deref())
    }

    /// A DynamoDB Streams client on the same endpoint.
    pub fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        streams_from(&self.config, self.endpoint_url.as_deref())
    }

    /// What to do about an error of a request, when the configuration is
    /// the likely cause; `None` for the others.
    pub fn advice(&self, error: &MigrateError) -> Option<String> {
        let MigrateError::Dynamo { message, .. } = error else { return None };
        let has = |needle: &str| message.to_ascii_lowercase().contains(&needle.to_ascii_lowercase());
        let profile = self.profile.clone().or_else(|| std::env::var("AWS_PROFILE").ok());
        if has("credentials") && (has("dispatch failure") || has("not load") || has("no credentials") || has("provider")) {
            return Some(format!(
                "no AWS credentials were found{}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a profile with \
                 credentials (--profile NAME or AWS_PROFILE), or sign in (`aws sso login`). DynamoDB Local accepts any \
                 values, e.g. AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local.",
                profile.map(|p| format!(" (profile `{p}`)")).unwrap_or_default()
            ));
        }
        if has("UnrecognizedClientException") || has("InvalidSignatureException") || has("ExpiredToken") {
            return Some(
                "DynamoDB refused the credentials (unknown, expired or for another account). Check AWS_ACCESS_KEY_ID / \
                 AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the profile (--profile NAME), or sign in again (`aws sso login`)."
                    .into(),
            );
        }
        if has("dispatch failure") {
            let endpoint = self.endpoint();
            return Some(format!(
                "cannot reach DynamoDB at {endpoint}. Check the network, or the endpoint: --endpoint-url URL (or \
                 AWS_ENDPOINT_URL_DYNAMODB), e.g. http://localhost:8000 for DynamoDB Local."
            ));
        }
        None
    }

    /// The endpoint requests go to, for messages.
    fn endpoint(&self) -> String {
        let env = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        match self.endpoint_url.clone().or(env).or_else(|| self.config.endpoint_url().map(str::to_string)) {
            Some(url) => url,
            None => format!("the default endpoint of region {}", self.config.region().map(|r| r.as_ref()).unwrap_or("?")),
        }
    }
}

/// A DynamoDB client on `endpoint_url`, or where `config` says. Set on the
/// service's builder: set on the loader, AWS_ENDPOINT_URL_DYNAMODB would
/// win over the flag.
fn dynamodb_client(config: &SdkConfig, endpoint_url: Option<&str>) -> Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(config);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    Client::from_conf(builder.build())
}

/// A DynamoDB Streams client. DynamoDB Local serves streams on its one
/// endpoint: when only `AWS_ENDPOINT_URL_DYNAMODB` (or `--endpoint-url`)
/// names an endpoint, the streams client uses it too.
fn streams_from(config: &SdkConfig, endpoint_url: Option<&str>) -> aws_sdk_dynamodbstreams::Client {
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(config);
    let own = std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_some();
    let url = endpoint_url.map(str::to_string).or_else(|| (!own).then(|| std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok()).flatten());
    if let Some(url) = url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
}

/// A DynamoDB client from the environment's AWS configuration alone (no
/// flags), for programs that drive the library as the CLI does.
pub async fn client() -> Client {
    dynamodb_client(&aws_config::defaults(BehaviorVersion::latest()).load().await, None)
}

/// A DynamoDB Streams client from the environment's AWS configuration
/// alone, on DynamoDB's endpoint when only `AWS_ENDPOINT_URL_DYNAMODB`
/// names one (DynamoDB Local).
pub async fn streams_client() -> aws_sdk_dynamodbstreams::Client {
    streams_from(&aws_config::defaults(BehaviorVersion::latest()).load().await, None)
}
