//! `lots login` and `lots logout`: get an access token from the municipality's OpenID issuer —
//! the OAuth2 device authorization grant for people, client credentials for scripts — and keep
//! it in a file only the user can read. `--token` / `LOTS_TOKEN` override the saved token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lots_platform::auth::OidcHttp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::args::{Global, LoginArgs};
use crate::exit::{NotLoggedIn, UsageError};

/// The public client people log in with (device flow).
const CLI_CLIENT: &str = "lots-cli";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A saved token.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    issuer: String,
    access_token: String,
    expires_at: DateTime<Utc>,
}

/// Where the token is kept: `LOTS_TOKEN_FILE`, else the user's cache folder.
fn token_file() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("LOTS_TOKEN_FILE") {
        return Ok(PathBuf::from(path));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no HOME or XDG_CACHE_HOME to keep the token in; set LOTS_TOKEN_FILE")?;
    Ok(cache.join("lots").join("token.json"))
}

/// The token to send: `--token`/`LOTS_TOKEN`, else the one `lots login` saved.
pub fn token(global: &Global) -> anyhow::Result<String> {
    if let Some(token) = global.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = token_file()?;
    let text = std::fs::read_to_string(&path).map_err(|_| NotLoggedIn("not logged in".into()))?;
    let saved: Saved =
        serde_json::from_str(&text).map_err(|_| NotLoggedIn(format!("{} is damaged", path.display())))?;
    if saved.expires_at <= Utc::now() {
        return Err(NotLoggedIn(format!("the token from {} expired", saved.issuer)).into());
    }
    Ok(saved.access_token)
}

/// Runs `lots login`.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let http = OidcHttp::new()?;
    let issuer = args.issuer.trim_end_matches('/').to_owned();
    let discovery = http.get_json(&format!("{issuer}/.well-known/openid-configuration")).await?;
    let endpoint = |name: &str| {
        discovery
            .get(name)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| anyhow::anyhow!("the issuer {issuer} publishes no {name}"))
    };
    let token_endpoint = endpoint("token_endpoint")?;
    let answer = match (&args.client_id, &args.client_secret) {
        (Some(id), Some(secret)) => {
            let form = [("grant_type", "client_credentials"), ("scope", args.scope.as_str())];
            let (status, answer) = http.post_form(&token_endpoint, &form, Some((id, secret))).await?;
            anyhow::ensure!(status.is_success(), "the issuer refused the client credentials: {}", oauth_error(&answer));
            answer
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(UsageError("give both --client-id and --client-secret (LOTS_CLIENT_SECRET)".into()).into());
        }
        (None, None) => device_flow(&http, &endpoint("device_authorization_endpoint")?, &token_endpoint, &args).await?,
    };
    let access_token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .context("the issuer's answer holds no access_token")?
        .to_owned();
    let lifetime = answer.get("expires_in").and_then(Value::as_i64).unwrap_or(300);
    let saved =
        Saved { issuer: issuer.clone(), access_token, expires_at: Utc::now() + chrono::Duration::seconds(lifetime) };
    if args.print {
        println!("{}", saved.access_token);
        return Ok(());
    }
    let path = token_file()?;
    save(&path, &saved)?;
    eprintln!("logged in at {issuer}; the token is valid until {} (kept in {})", saved.expires_at, path.display());
    Ok(())
}

/// Runs `lots logout`: forgets the saved token.
pub fn logout() -> anyhow::Result<()> {
    let path = token_file()?;
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!("logged out (removed {})", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("not logged in"),
        Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
    }
    Ok(())
}

/// The device authorization grant: show the person where to log in, then wait for it.
async fn device_flow(http: &OidcHttp, device: &str, token: &str, args: &LoginArgs) -> anyhow::Result<Value> {
    let form = [("client_id", CLI_CLIENT), ("scope", args.scope.as_str())];
    let (status, start) = http.post_form(device, &form, None).await?;
    anyhow::ensure!(status.is_success(), "the issuer refused to start a login: {}", oauth_error(&start));
    let text = |name: &str| start.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let device_code = text("device_code");
    let url =
        Some(text("verification_uri_complete")).filter(|u| !u.is_empty()).unwrap_or_else(|| text("verification_uri"));
    eprintln!("To log in, open {url}\nand confirm the code {}", text("user_code"));
    let mut interval = Duration::from_secs(start.get("interval").and_then(Value::as_u64).unwrap_or(5));
    let expires =
        std::time::Instant::now() + Duration::from_secs(start.get("expires_in").and_then(Value::as_u64).unwrap_or(600));
    loop {
        tokio::time::sleep(interval).await;
        let form = [("grant_type", DEVICE_GRANT), ("client_id", CLI_CLIENT), ("device_code", device_code.as_str())];
        let (status, answer) = http.post_form(token, &form, None).await?;
        if status.is_success() {
            return Ok(answer);
        }
        match answer.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            _ => anyhow::bail!("login failed: {}", oauth_error(&answer)),
        }
        anyhow::ensure!(std::time::Instant::now() < expires, "the login code expired; run lots login again");
    }
}

fn oauth_error(answer: &Value) -> String {
    let field = |name: &str| answer.get(name).and_then(Value::as_str).unwrap_or_default();
    format!("{} {}", field("error"), field("error_description")).trim().to_owned()
}

/// Writes the token where only this user can read it.
fn save(path: &std::path::Path, saved: &Saved) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    // `mode` applies only to a new file; an older one may have been readable by others.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(serde_json::to_string(saved)?.as_bytes())?;
    Ok(())
}
