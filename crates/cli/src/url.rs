//! `warden url check`: would the egress policy let this URL through, and to which addresses.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;
use warden_egress::{Denial, Resolver, Target, UrlPolicy};

/// Exit status when the policy denies the destination.
pub const EXIT_DENIED: u8 = 3;
/// Exit status for a URL that does not parse (and for bad flags).
pub const EXIT_USAGE: u8 = 2;

/// `warden url` subcommands.
#[derive(Debug, Subcommand)]
pub enum UrlCommand {
    /// Judge URL against the egress policy: exit 0 and the address(es) it would connect to,
    /// 3 and the rule that denies it, 2 when it does not parse.
    Check(CheckArgs),
}

/// Egress policy flags shared by the egress commands.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Resolve HOST to ADDR instead of asking DNS (repeatable; the address is still judged).
    #[arg(long = "resolve", value_name = "HOST=ADDR")]
    resolve: Vec<String>,
    /// Allow a CIDR the special-purpose table denies (repeatable; the only way into one).
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    allow_cidr: Vec<ipnet::IpNet>,
    /// Deny a CIDR (repeatable; wins over every allow).
    #[arg(long = "deny-cidr", value_name = "CIDR")]
    deny_cidr: Vec<ipnet::IpNet>,
    /// Only these domains (`example.com`, `*.example.com`; repeatable).
    #[arg(long = "allow-domain", value_name = "DOMAIN")]
    allow_domain: Vec<String>,
    /// Never these domains (repeatable; wins over --allow-domain).
    #[arg(long = "deny-domain", value_name = "DOMAIN")]
    deny_domain: Vec<String>,
    /// Ports that may be connected to (repeatable; default 80 and 443).
    #[arg(long = "allow-port", value_name = "PORT")]
    allow_port: Vec<u16>,
}

impl PolicyArgs {
    /// The policy and resolver these flags describe.
    fn build(&self) -> anyhow::Result<(UrlPolicy, Resolver)> {
        let mut policy = UrlPolicy::default()
            .with_allow_domains(&self.allow_domain)?
            .with_deny_domains(&self.deny_domain)?;
        policy.address.allow = self.allow_cidr.clone();
        policy.address.deny = self.deny_cidr.clone();
        if !self.allow_port.is_empty() {
            policy.ports = self.allow_port.clone();
        }
        let resolver = self
            .resolve
            .iter()
            .try_fold(Resolver::default(), |r, spec| r.with_override(spec))?;
        Ok((policy, resolver))
    }
}

/// Options of `warden url check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
    /// The URL to judge.
    url: String,
}

#[derive(Serialize)]
struct Report<'a> {
    url: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    denial: Option<&'a Denial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Runs `warden url …`.
pub fn main(command: UrlCommand) -> ExitCode {
    match command {
        UrlCommand::Check(args) => check(&args),
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let (policy, resolver) = match args.policy.build() {
        Ok(built) => built,
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = policy.check(&args.url, &resolver);
    let code = match &result {
        Ok(_) => ExitCode::SUCCESS,
        Err(Denial::Parse { .. }) => ExitCode::from(EXIT_USAGE),
        Err(_) => ExitCode::from(EXIT_DENIED),
    };
    if args.json {
        let report = Report {
            url: &args.url,
            allowed: result.is_ok(),
            target: result.as_ref().ok(),
            denial: result.as_ref().err(),
            reason: result.as_ref().err().map(ToString::to_string),
        };
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("warden: error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    } else {
        match &result {
            Ok(target) => println!("{target}"),
            Err(Denial::Parse { reason }) => {
                eprintln!("warden: `{}` is not a URL: {reason}", args.url)
            }
            Err(denial) => println!("denied: {denial}"),
        }
    }
    code
}
