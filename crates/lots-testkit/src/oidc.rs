//! A real OpenID provider for tests: `tools/oidc/server.mjs` (the npm package `oidc-provider`)
//! started as a process on a free port, with one issuer per tenant and a directory of people
//! made from the tenants' configuration. Tokens come from the provider itself.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use lots_platform::Tenants;
use lots_platform::auth::OidcHttp;
use serde_json::{Value, json};

/// The client that may use the provider's test grant (see tools/oidc/README.md).
const TEST_CLIENT: (&str, &str) = ("lots-test", "lots-test-secret");
/// The test-only grant that issues a person's token without a browser.
const TEST_GRANT: &str = "urn:lots:params:oauth:grant-type:test-login";

/// Who a test acts as; each is a person or client in every tenant's directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    /// Reception (subject "reception").
    Reception,
    /// A handläggare: the officer with this id.
    Officer(String),
    /// The enhetschef who is this officer (a unit's manager).
    Manager(String),
    /// The tenant's näringslivschef.
    Naringslivschef,
    /// A client with role integrator (client credentials).
    Integrator,
    /// A client with role admin (client credentials).
    Admin,
}

impl Who {
    /// The subject (login name) in the provider's directory.
    pub fn subject(&self) -> String {
        match self {
            Who::Reception => "reception".into(),
            Who::Officer(id) => id.clone(),
            Who::Manager(id) => format!("enhetschef.{id}"),
            Who::Naringslivschef => "naringslivschef".into(),
            Who::Integrator => "integrator".into(),
            Who::Admin => "admin".into(),
        }
    }
}

/// A running provider.
pub struct TestOidc {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    base: String,
    port: u16,
    /// The signing key (private JWKS; `<keys>.pem` beside it).
    keys: PathBuf,
    _dir: Option<tempfile::TempDir>,
    config: String,
    http: OidcHttp,
    tokens: Mutex<HashMap<(String, Who), String>>,
}

impl TestOidc {
    /// Starts a provider on a free port with an issuer per tenant and people made from their
    /// configuration, and a key of its own.
    pub fn start(tenants: &Tenants) -> anyhow::Result<TestOidc> {
        let dir = tempfile::tempdir().context("temporary key folder")?;
        let keys = dir.path().join("jwks.json");
        let mut oidc = Self::start_at(tenants, 0, keys)?;
        oidc._dir = Some(dir);
        Ok(oidc)
    }

    /// Starts a provider on `port` (0: a free one), keeping its signing key in `keys`, so tokens
    /// stay valid across restarts (`lots dev`).
    pub fn start_at(tenants: &Tenants, port: u16, keys: PathBuf) -> anyhow::Result<TestOidc> {
        let config = directory(tenants).to_string();
        let (child, stdout, base) = spawn(&config, &keys, port)?;
        let port = base.rsplit(':').next().and_then(|p| p.parse().ok()).context("port in the ready line")?;
        let http = OidcHttp::new()?;
        Ok(TestOidc { child, _stdout: stdout, base, port, keys, _dir: None, config, http, tokens: Mutex::default() })
    }

    /// `tenants` as they are configured, except that each trusts only its issuer here.
    pub fn trusted_by(&self, tenants: &Tenants) -> anyhow::Result<Tenants> {
        let configs = tenants.iter().map(|t| {
            let mut t = (**t).clone();
            t.auth.issuers = vec![self.issuer(&t.kommunkod)];
            t
        });
        Ok(Tenants::from_configs(configs.collect::<Vec<_>>())?)
    }

    /// The provider's base URL; each tenant's issuer is `<base>/<kommunkod>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The issuer URL of `tenant`, as its configuration must name it.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.base)
    }

    /// The provider's private JWKS file (its current key and `kid`).
    pub fn keys_file(&self) -> &std::path::Path {
        &self.keys
    }

    /// The provider's private signing key (PKCS#8 PEM), to make deliberately bad tokens.
    pub fn private_key_pem(&self) -> anyhow::Result<Vec<u8>> {
        let mut pem = self.keys.clone().into_os_string();
        pem.push(".pem");
        std::fs::read(pem).context("read the provider's key")
    }

    /// Restarts the provider on the same port with a new signing key (key rotation).
    pub fn rotate_key(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.keys);
        let (child, stdout, _) = spawn(&self.config, &self.keys, self.port)?;
        self.child = child;
        self._stdout = stdout;
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }

    /// An access token for `who` in `tenant`, from the provider (cached per test).
    pub async fn token(&self, tenant: &str, who: &Who) -> anyhow::Result<String> {
        let key = (tenant.to_owned(), who.clone());
        if let Some(token) = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(token.clone());
        }
        let token = match who {
            Who::Integrator | Who::Admin => {
                let id = who.subject();
                self.request(tenant, (&id, &format!("{id}-secret")), &[("grant_type", "client_credentials")]).await?
            }
            person => {
                let subject = person.subject();
                self.request(tenant, TEST_CLIENT, &[("grant_type", TEST_GRANT), ("subject", &subject)]).await?
            }
        };
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(key, token.clone());
        Ok(token)
    }

    async fn request(&self, tenant: &str, client: (&str, &str), form: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut form = form.to_vec();
        form.push(("scope", "lots"));
        let url = format!("{}/token", self.issuer(tenant));
        let (status, answer) = self.http.post_form(&url, &form, Some(client)).await?;
        match answer.get("access_token").and_then(Value::as_str) {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => bail!("the provider refused a token for {form:?} in {tenant}: {status} {answer}"),
        }
    }
}

impl Drop for TestOidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every tenant's people and clients, in the provider's configuration shape.
fn directory(tenants: &Tenants) -> Value {
    let mut by_tenant = serde_json::Map::new();
    for t in tenants.iter() {
        let person = |who: Who, role: &str, officer: Option<&str>, name: &str| json!({ "sub": who.subject(), "name": name, "role": role, "officer_id": officer });
        let mut people = vec![person(Who::Reception, "reception", None, "Reception")];
        for o in &t.officers {
            people.push(person(Who::Officer(o.id.clone()), "handlaggare", Some(&o.id), &o.name));
            if t.units.iter().any(|u| u.manager == o.id) {
                people.push(person(Who::Manager(o.id.clone()), "enhetschef", Some(&o.id), &o.name));
            }
        }
        people.push(person(Who::Naringslivschef, "naringslivschef", Some(&t.naringslivschef), "Näringslivschef"));
        for p in &mut people {
            if p["officer_id"].is_null() {
                p.as_object_mut().map(|o| o.remove("officer_id"));
            }
        }
        let client =
            |id: &str, role: &str| json!({ "client_id": id, "client_secret": format!("{id}-secret"), "role": role });
        let mut test = client(TEST_CLIENT.0, "integrator");
        test["test_login"] = json!(true);
        let clients = vec![test, client("integrator", "integrator"), client("admin", "admin")];
        by_tenant.insert(t.kommunkod.clone(), json!({ "people": people, "clients": clients }));
    }
    json!({ "audience": "lots", "tenants": by_tenant })
}

/// `tools/oidc` in this repository.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/oidc")
}

/// The provider's stderr goes to `<keys>.log`, for the error when it does not start.
fn stderr_log(keys: &std::path::Path) -> Stdio {
    let mut log = keys.as_os_str().to_owned();
    log.push(".log");
    std::fs::File::create(log).map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

/// Starts the provider, trying again once if it does not come up in time.
fn spawn(config: &str, keys: &std::path::Path, port: u16) -> anyhow::Result<(Child, BufReader<ChildStdout>, String)> {
    spawn_once(config, keys, port).or_else(|first| {
        eprintln!("the test OpenID provider did not start ({first:#}); trying once more");
        spawn_once(config, keys, port)
    })
}

fn spawn_once(
    config: &str,
    keys: &std::path::Path,
    port: u16,
) -> anyhow::Result<(Child, BufReader<ChildStdout>, String)> {
    let dir = provider_dir();
    if !dir.join("node_modules/oidc-provider").is_dir() {
        bail!(
            "the test OpenID provider is not installed; install it with: npm ci --prefix {} \
             (`just deps` does it; Node.js 20 or newer is needed)",
            dir.display()
        );
    }
    // The configuration goes in a file beside the key: it holds no secrets a test cares about.
    let mut config_file = keys.as_os_str().to_owned();
    config_file.push(".config.json");
    std::fs::File::create(&config_file)
        .and_then(|mut f| f.write_all(config.as_bytes()))
        .context("write the provider's configuration")?;
    let mut child = Command::new("node")
        .arg(dir.join("server.mjs"))
        .arg("--config")
        .arg(&config_file)
        .args(["--port", &port.to_string(), "--keys"])
        .arg(keys)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr_log(keys))
        .spawn()
        .context("start node (Lotsen's tests need Node.js 20 or newer for the OpenID provider)")?;
    let stdout = child.stdout.take().context("provider stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send((read, reader));
    });
    // Node starts in well under a second, but a loaded CI machine can be much slower.
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok((Ok(line), reader)) if line.starts_with("ready ") => Ok((child, reader, line[6..].trim().to_owned())),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let mut log = keys.as_os_str().to_owned();
            log.push(".log");
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "the test OpenID provider did not start: {:?}; it said: {}",
                other.ok().map(|(line, _)| line.ok()),
                said.lines().filter(|l| !l.contains("WARNING")).collect::<Vec<_>>().join(" | ")
            )
        }
    }
}
