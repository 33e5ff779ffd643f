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
    /// Whether no policy flag was given.
    pub fn is_empty(&self) -> bool {
        self.resolve.is_empty() && !self.has_policy_rules()
    }

    /// Whether any flag other than `--resolve` was given.
    pub fn has_policy_rules(&self) -> bool {
        !(self.allow_cidr.is_empty()
            && self.deny_cidr.is_empty()
            && self.allow_domain.is_empty()
            && self.deny_domain.is_empty()
            && self.allow_port.is_empty())
    }

    /// Whether at least one `--allow-domain` was given.
    pub fn has_allow_domain(&self) -> bool {
        !self.allow_domain.is_empty()
    }

    /// The policy and resolver these flags describe.
    pub fn build(&self) -> anyhow::Result<(UrlPolicy, Resolver)> {
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

/// Options of `warden fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// HTTP method.
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// Request header NAME:VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// Request body: the text itself, or @FILE to send a file's contents.
    #[arg(long, value_name = "TEXT|@FILE")]
    data: Option<String>,
    /// Bytes of (decompressed) response body kept; K/M/G suffixes.
    #[arg(long, value_name = "SIZE", default_value = "10M", value_parser = parse_size)]
    max_bytes: u64,
    /// Seconds allowed for the whole fetch, redirects included.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
    /// Seconds allowed to establish each connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    connect_timeout: f64,
    /// Print a JSON summary (status, headers, final URL, connected address, redirect chain,
    /// body as text) instead of the body.
    #[arg(long)]
    json: bool,
    /// The URL to fetch.
    url: String,
}

fn parse_size(s: &str) -> Result<u64, String> {
    warden_sandbox::parse_size(s).map_err(|e| e.to_string())
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<std::time::Duration> {
    if !value.is_finite() || value <= 0.0 || value > 86_400.0 {
        anyhow::bail!("--{flag} {value}: expected seconds greater than 0 and at most 86400");
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

/// Runs `warden fetch`: exit 0 with a response (any HTTP status), 3 when the policy denies a
/// hop, 1 when the exchange fails, 2 for bad arguments.
pub fn fetch_main(args: FetchArgs) -> ExitCode {
    match fetch(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn fetch(args: &FetchArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let (policy, resolver) = args.policy.build()?;
    let mut request = warden_egress::FetchRequest::get(args.url.clone());
    request.method = args
        .method
        .to_uppercase()
        .parse()
        .map_err(|_| anyhow::anyhow!("--method {}: not an HTTP method", args.method))?;
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--header {header}: expected NAME:VALUE"))?;
        request.headers.push((name.to_string(), value.to_string()));
    }
    request.body = match &args.data {
        Some(data) => match data.strip_prefix('@') {
            // Any readable file, pipes included (`@/dev/stdin`, `@<(jq …)`).
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| anyhow::anyhow!("--data @{path}: {e}"))?)
            }
            None => Some(data.clone().into_bytes()),
        },
        None => None,
    };
    request.max_bytes = args.max_bytes;
    request.timeout = seconds("timeout", args.timeout)?;
    request.connect_timeout = seconds("connect-timeout", args.connect_timeout)?;
    match warden_egress::fetch(&policy, &resolver, &request) {
        Ok(response) => {
            let mut out = std::io::stdout().lock();
            if args.json {
                #[derive(Serialize)]
                struct Summary<'a> {
                    #[serde(flatten)]
                    response: &'a warden_egress::FetchResponse,
                    body: String,
                    body_bytes: usize,
                }
                let summary = Summary {
                    response: &response,
                    body: String::from_utf8_lossy(&response.body).into_owned(),
                    body_bytes: response.body.len(),
                };
                writeln!(out, "{}", serde_json::to_string(&summary)?)?;
            } else {
                out.write_all(&response.body)?;
                if response.truncated {
                    eprintln!(
                        "warden: response truncated at {} bytes (--max-bytes)",
                        args.max_bytes
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(warden_egress::FetchError::Denied { url, denial }) => {
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({"allowed": false, "url": url, "denial": denial, "reason": denial.to_string()})
                )
                .map_err(|e| anyhow::anyhow!("cannot write to stdout: {e}"))?;
            }
            eprintln!("warden: denied: {url}: {denial}");
            Ok(ExitCode::from(if matches!(denial, Denial::Parse { .. }) {
                EXIT_USAGE
            } else {
                EXIT_DENIED
            }))
        }
        Err(e @ warden_egress::FetchError::BadHeader(_)) => Err(e.into()),
        Err(e) => {
            eprintln!("warden: fetch failed: {e:#}");
            Ok(ExitCode::from(1))
        }
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
            Ok(line) => {
                if let Err(e) = outln!("{line}") {
                    return crate::broken_stdout(&e);
                }
            }
            Err(e) => {
                eprintln!("warden: error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    } else {
        let printed = match &result {
            Ok(target) => outln!("{target}"),
            Err(Denial::Parse { reason }) => {
                eprintln!("warden: `{}` is not a URL: {reason}", args.url);
                Ok(())
            }
            Err(denial) => outln!("denied: {denial}"),
        };
        if let Err(e) = printed {
            return crate::broken_stdout(&e);
        }
    }
    code
}
