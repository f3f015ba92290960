//! `rig remote run`: runs suites on a `rig serve` over its HTTP API and exits as `rig run` does,
//! for CI jobs on a runner next to a rig (README: "Many rigs").
//!
//! `POST /runs` with the selection, `requested_by` and `max_wall_time_s`; `GET /runs/{id}` once
//! per `--poll` until the run is no longer `running`, printing each case as it is recorded; then
//! `record.json` and `junit.xml` into `--out`. SIGINT or SIGTERM (a cancelled job) sends
//! `DELETE /runs/{id}` and exits 2; a client killed outright leaves its run to the service's
//! wall-clock maximum. Exit codes: 0 passed; 1 failed or inconclusive; 2 usage error, the rig
//! refused or could not be reached, or the run was stopped or interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header;
use serde_json::{json, Value};

/// `rig remote …`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    #[command(subcommand)]
    command: RemoteCommand,
}

#[derive(Debug, Subcommand)]
enum RemoteCommand {
    /// Run suites on a rig serve and wait for the verdict (exit codes as `rig run`).
    Run(RemoteRunArgs),
}

/// Arguments of `rig remote run`.
#[derive(Debug, Args)]
pub struct RemoteRunArgs {
    /// The service, `http://HOST:PORT` (put TLS in front of a rig as an SSH tunnel or a proxy).
    #[arg(long)]
    url: String,
    /// Suite to run (repeatable; none: every suite).
    #[arg(long = "suite")]
    suites: Vec<String>,
    /// Case to run (repeatable).
    #[arg(long = "case")]
    cases: Vec<String>,
    /// Directory for the run's record.json and junit.xml.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// File holding the service's API token (its --token-file).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The run's maximum on the service's wall clock (e.g. 90m): the rig ends it by itself if
    /// this client goes away. Capped by the service's --max-wall-time.
    #[arg(long, default_value = "1h", value_parser = super::serve::parse_duration)]
    max_wall_time: Duration,
    /// Who asks (default: $CI_JOB_URL, GitHub's run URL, or `rig remote USER@HOST`).
    #[arg(long)]
    requested_by: Option<String>,
    /// Run the software meter paced at the service's --sim-speed instead of virtual time.
    #[arg(long)]
    paced: bool,
    /// Time between two looks at the run.
    #[arg(long, default_value = "1s", value_parser = super::serve::parse_duration)]
    poll: Duration,
}

/// `host:port` of an `http://HOST:PORT[/]` URL.
fn authority(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").with_context(|| {
        format!("--url {url:?}: expected http://HOST:PORT (for https, tunnel the port or use curl)")
    })?;
    let auth = rest.trim_end_matches('/');
    if auth.is_empty() || auth.contains('/') || !auth.contains(':') {
        bail!("--url {url:?}: expected http://HOST:PORT, e.g. http://127.0.0.1:8061");
    }
    Ok(auth.to_string())
}

/// The service's address and token.
struct Client {
    authority: String,
    token: Option<String>,
}

impl Client {
    /// One request on its own connection; the status and the body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let url = format!("http://{}{path}", self.authority);
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("cannot reach {url}: is rig serve running there?"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .with_context(|| format!("{method} {url}"))?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req.body(Full::new(Bytes::from(bytes)))?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?
            .to_bytes();
        Ok((status, body))
    }

    /// A JSON answer with status `want`; anything else is an error with the service's message.
    async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, bytes) = self.call(method, path, body).await?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status != want {
            let msg = v["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!(
                "{method} http://{}{path}: HTTP {status}: {msg}",
                self.authority
            );
        }
        Ok(v)
    }
}

/// `requested_by` when not given: the CI job's URL, else `rig remote USER@HOST`.
fn default_requester() -> String {
    if let Ok(u) = std::env::var("CI_JOB_URL") {
        return u;
    }
    if let (Ok(server), Ok(repo), Ok(run)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        return format!("{server}/{repo}/actions/runs/{run}");
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("rig remote {user}@{}", host.trim())
}

/// Runs `rig remote`.
pub fn run(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let RemoteCommand::Run(a) = args.command;
    let token = match &a.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --token-file {}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let client = Client {
        authority: authority(&a.url)?,
        token,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(remote_run(&client, &a))
}

async fn remote_run(client: &Client, a: &RemoteRunArgs) -> anyhow::Result<ExitCode> {
    let mut who = a.requested_by.clone().unwrap_or_else(default_requester);
    who = who.chars().filter(|c| !c.is_control()).take(200).collect();
    let body = json!({
        "suites": a.suites,
        "cases": a.cases,
        "paced": a.paced,
        "max_wall_time_s": a.max_wall_time.as_secs_f64(),
        "requested_by": who,
    });
    let started = client.json("POST", "/runs", Some(&body), 202).await?;
    let id = started["id"]
        .as_str()
        .context("the service answered no run id")?
        .to_string();
    eprintln!("rig remote: run {id} on {}", a.url);
    let record = match wait(client, &id, a.poll).await? {
        Some(r) => r,
        None => {
            let _ = client.call("DELETE", &format!("/runs/{id}"), None).await;
            eprintln!("rig remote: cancelled; asked the rig to stop run {id}");
            return Ok(ExitCode::from(2));
        }
    };
    save(client, &id, &record, &a.out).await?;
    let outcome = record["outcome"]["outcome"].as_str().unwrap_or("stopped");
    eprintln!("rig remote: {id}: {outcome} {}", record["summary"]);
    Ok(ExitCode::from(match outcome {
        "passed" => 0,
        "failed" | "inconclusive" => 1,
        _ => {
            if let Some(why) = record["aborted"].as_str() {
                eprintln!("rig remote: {why}");
            }
            2
        }
    }))
}

/// Polls run `id` until it ends (its record) or a signal arrives (`None`), printing each case
/// as it is recorded.
async fn wait(client: &Client, id: &str, poll: Duration) -> anyhow::Result<Option<Value>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut shown = 0;
    loop {
        let rec = client
            .json("GET", &format!("/runs/{id}"), None, 200)
            .await?;
        let cases = rec["cases"].as_array().cloned().unwrap_or_default();
        for c in cases.iter().skip(shown) {
            println!(
                "{:<28} {:<12} {}",
                c["id"].as_str().unwrap_or("?"),
                c["verdict"].as_str().unwrap_or("?"),
                c["message"].as_str().unwrap_or("")
            );
        }
        shown = cases.len();
        if rec["state"] != "running" {
            return Ok(Some(rec));
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = term.recv() => return Ok(None),
            _ = int.recv() => return Ok(None),
        }
    }
}

/// Writes the run's `record.json` (as `GET /runs/{id}` shows it) and `junit.xml` into `out`.
async fn save(client: &Client, id: &str, record: &Value, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create --out {}", out.display()))?;
    let rec = serde_json::to_vec_pretty(record).expect("a record serialises");
    std::fs::write(out.join("record.json"), rec)
        .with_context(|| format!("cannot write {}", out.join("record.json").display()))?;
    let (status, junit) = client
        .call("GET", &format!("/runs/{id}/junit.xml"), None)
        .await?;
    if status == 200 {
        std::fs::write(out.join("junit.xml"), junit)
            .with_context(|| format!("cannot write {}", out.join("junit.xml").display()))?;
    } else {
        eprintln!("rig remote: warning: the rig served no junit.xml for {id} (HTTP {status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_host_port() {
        assert_eq!(
            authority("http://127.0.0.1:8061").unwrap(),
            "127.0.0.1:8061"
        );
        assert_eq!(authority("http://rig7:8061/").unwrap(), "rig7:8061");
        assert!(authority("https://rig7:8061")
            .unwrap_err()
            .to_string()
            .contains("tunnel"));
        assert!(authority("http://rig7").is_err());
        assert!(authority("http://rig7:8061/runs").is_err());
        assert!(authority("rig7:8061").is_err());
    }
}
