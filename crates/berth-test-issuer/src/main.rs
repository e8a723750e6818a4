//! `berth-test-issuer`: the test issuer as a process, for benchmarks.
//!
//! ```text
//! berth-test-issuer --audience AUD --claims-repository OWNER/REPO --token-out FILE
//!                   [--ref REF] [--lifetime-secs N]
//! ```
//!
//! Starts the issuer on `127.0.0.1:0`, writes a GitHub Actions-shaped ID token
//! for `OWNER/REPO` at `REF` (default `refs/heads/main`) and `AUD`, valid for
//! `N` seconds (default 3600), to `FILE` (whole: written aside, then renamed),
//! then prints the issuer URL as the first line of stdout and serves until
//! killed. A registry verifying the token for longer than its
//! `--oidc-max-token-age-secs` refuses it as too old.
//!
//! Exit codes: 0 never (it serves until killed), 2 for bad arguments, 1 when
//! the token file cannot be written.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_test_issuer::Issuer;
use serde_json::json;

const USAGE: &str = "usage: berth-test-issuer --audience AUD --claims-repository OWNER/REPO \
                     --token-out FILE [--ref REF] [--lifetime-secs N]";

/// The resolved arguments.
struct Args {
    audience: String,
    repository: String,
    git_ref: String,
    token_out: PathBuf,
    lifetime_secs: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut audience = None;
    let mut repository = None;
    let mut git_ref = "refs/heads/main".to_owned();
    let mut token_out = None;
    let mut lifetime_secs = 3600;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--audience" => audience = Some(value),
            "--claims-repository" => repository = Some(value),
            "--ref" => git_ref = value,
            "--token-out" => token_out = Some(PathBuf::from(value)),
            "--lifetime-secs" => {
                lifetime_secs = value
                    .parse()
                    .map_err(|_| format!("--lifetime-secs takes seconds, not {value:?}"))?;
            }
            _ => return Err(format!("unknown argument {flag:?}; {USAGE}")),
        }
    }
    Ok(Args {
        audience: audience.ok_or_else(|| format!("--audience is required; {USAGE}"))?,
        repository: repository
            .ok_or_else(|| format!("--claims-repository is required; {USAGE}"))?,
        git_ref,
        token_out: token_out.ok_or_else(|| format!("--token-out is required; {USAGE}"))?,
        lifetime_secs,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("berth-test-issuer: {message}");
            return ExitCode::from(2);
        }
    };
    let issuer = Issuer::start().await;
    let mut claims = issuer.github_claims(&args.repository, &args.git_ref, &args.audience);
    claims["exp"] = json!(berth_test_issuer::now() + args.lifetime_secs);
    let token = issuer.mint(claims);
    let mut aside = args.token_out.clone().into_os_string();
    aside.push(".tmp");
    let written =
        std::fs::write(&aside, &token).and_then(|()| std::fs::rename(&aside, &args.token_out));
    if let Err(e) = written {
        eprintln!(
            "berth-test-issuer: writing the token to {}: {e}",
            args.token_out.display()
        );
        return ExitCode::from(1);
    }
    let mut stdout = std::io::stdout().lock();
    // A reader that went away does not stop the issuer.
    let _ = writeln!(stdout, "{}", issuer.url()).and_then(|()| stdout.flush());
    drop(stdout);
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
