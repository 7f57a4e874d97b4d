#!/usr/bin/env node
// Lotsen development OpenID provider: a real, certified provider (panva/oidc-provider) with
// in-memory storage, configured from a small JSON file. One process serves one issuer per
// tenant (municipality), each mounted under /<kommunkod>. For tests and local development only.
//
//   node tools/oidc/server.mjs --port 0 --config tools/oidc/demo.json --keys /tmp/oidc/jwks.json
//
// See README.md next to this file for flags, the config schema and curl examples.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// oidc-provider prints its notices with console.info; stdout is kept for the "ready" line.
console.info = console.error;

const TEST_GRANT = 'urn:lots:params:oauth:grant-type:test-login';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const CLI_CLIENT = 'lots-cli';
const ROLES = new Set(['reception', 'handlaggare', 'enhetschef', 'naringslivschef', 'integrator', 'admin']);
const ALGS = { RS256: ['rsa', { modulusLength: 2048 }], ES256: ['ec', { namedCurve: 'P-256' }] };

const USAGE = `usage: node server.mjs --config FILE|- [--port P] [--keys FILE] [--alg RS256|ES256] [--ttl SECONDS]
  --config FILE   JSON config (audience, tenants: people, clients); "-" reads it from stdin; required
  --port P        port on 127.0.0.1 (default 0 = any free port; read it from the "ready" line)
  --keys FILE     private JWKS, shared by all tenants; created with a fresh key if missing,
                  FILE.pem gets the PKCS#8 key (default: an in-memory key that is never written)
  --alg ALG       RS256 (default) or ES256, the signing algorithm of a newly created key
  --ttl SECONDS   access token lifetime (default 3600)
Tenant K's issuer is http://127.0.0.1:P/K.`;

function fail(message) {
  console.error(`oidc: ${message}`);
  process.exit(2);
}

const { values: flags } = (() => {
  try {
    return parseArgs({
      options: {
        config: { type: 'string' },
        port: { type: 'string', default: '0' },
        keys: { type: 'string' },
        alg: { type: 'string', default: 'RS256' },
        ttl: { type: 'string', default: '3600' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return fail(`${err.message}\n${USAGE}`);
  }
})();
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!flags.config) fail(`--config is required\n${USAGE}`);
const port = Number(flags.port);
const ttl = Number(flags.ttl);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${flags.port}`);
if (!Number.isInteger(ttl) || ttl <= 0) fail(`bad --ttl ${flags.ttl}`);
if (!ALGS[flags.alg]) fail(`bad --alg ${flags.alg} (RS256 or ES256)`);

// ---------------------------------------------------------------------------------------------
// Config: who exists, per tenant. Validated up front so a typo fails at start, not mid-test.
// ---------------------------------------------------------------------------------------------

const config = (() => {
  const source = flags.config === '-' ? 'stdin' : flags.config;
  try {
    // fd 0 reads stdin to EOF: the harness must close it after writing the config.
    return JSON.parse(fs.readFileSync(flags.config === '-' ? 0 : flags.config, 'utf8'));
  } catch (err) {
    return fail(`config ${source}: ${err.message}`);
  }
})();
if (typeof config.audience !== 'string' || !config.audience) fail('config: "audience" must be a non-empty string');
if (config.people || config.clients) fail('config: "people" and "clients" belong inside "tenants": {"<kommunkod>": {...}}');
if (!config.tenants || typeof config.tenants !== 'object' || !Object.keys(config.tenants).length) {
  fail('config: "tenants" must be an object with at least one tenant');
}
// Resource indicators (RFC 8707) must be absolute URIs, but the audience the API checks ("lots")
// need not be one; the provider maps the one known indicator to that audience.
const resource = config.resource ?? (URL.canParse(config.audience) ? config.audience : 'urn:lots:api');
const resourceScope = config.scope ?? 'lots';

function checkRole(what, entry, id) {
  if (!ROLES.has(entry.role)) fail(`config: ${what} ${id} has role ${JSON.stringify(entry.role)}, not one of ${[...ROLES].join(', ')}`);
}

const tenantConfigs = Object.entries(config.tenants).map(([key, t]) => {
  // The key becomes a path segment of the issuer.
  if (!/^[A-Za-z0-9_-]+$/.test(key)) fail(`config: tenant key ${JSON.stringify(key)} must be letters, digits, - or _`);
  const where = `tenant ${key}`;
  const people = new Map();
  for (const p of t?.people ?? []) {
    if (!p.sub || !p.name || !p.role) fail(`config: ${where}: every person needs sub, name and role: ${JSON.stringify(p)}`);
    if (people.has(p.sub)) fail(`config: ${where}: duplicate person ${p.sub}`);
    checkRole(`${where}: person`, p, p.sub);
    people.set(p.sub, p);
  }
  const clients = new Map();
  for (const c of t?.clients ?? []) {
    if (!c.client_id || !c.client_secret || !c.role) fail(`config: ${where}: every client needs client_id, client_secret and role: ${JSON.stringify(c)}`);
    if (clients.has(c.client_id) || c.client_id === CLI_CLIENT) fail(`config: ${where}: duplicate or reserved client_id ${c.client_id}`);
    checkRole(`${where}: client`, c, c.client_id);
    clients.set(c.client_id, c);
  }
  return { key, people, clients };
});

// ---------------------------------------------------------------------------------------------
// Signing key (one, shared by every tenant): loaded from --keys, or created (and written) when
// the file is missing. Deleting the file and restarting rotates the key (new kid).
// ---------------------------------------------------------------------------------------------

function signingKey() {
  let jwk;
  if (flags.keys && fs.existsSync(flags.keys)) {
    [jwk] = JSON.parse(fs.readFileSync(flags.keys, 'utf8')).keys;
    if (!jwk?.d) fail(`${flags.keys} holds no private key`);
    if (jwk.alg !== flags.alg) fail(`${flags.keys} holds a key for ${jwk.alg}, not ${flags.alg}; delete it to make a new one`);
  } else {
    const [type, options] = ALGS[flags.alg];
    const { privateKey } = crypto.generateKeyPairSync(type, options);
    jwk = {
      ...privateKey.export({ format: 'jwk' }),
      kid: crypto.randomBytes(12).toString('base64url'),
      alg: flags.alg,
      use: 'sig',
    };
    if (flags.keys) {
      fs.mkdirSync(path.dirname(path.resolve(flags.keys)), { recursive: true });
      fs.writeFileSync(flags.keys, `${JSON.stringify({ keys: [jwk] }, null, 2)}\n`, { mode: 0o600 });
    }
  }
  if (flags.keys) {
    // Rewritten on every start so the PEM always matches the JWKS: tests sign deliberately bad
    // tokens (expired, wrong audience, ...) with the provider's real key.
    const pem = crypto.createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' });
    fs.writeFileSync(`${flags.keys}.pem`, pem, { mode: 0o600 });
  }
  return jwk;
}
const jwk = signingKey();

// The claims every access token carries besides the standard ones (RFC 9068).
function lotsClaims(entry) {
  return {
    lots_role: entry.role,
    lots_officer: entry.officer_id,
    lots_unit: entry.unit,
    name: entry.name ?? entry.client_id,
  };
}

// What the provider knows about the Lotsen API as a resource server: JWT access tokens for it.
function resourceServerInfo() {
  return {
    audience: config.audience,
    scope: resourceScope,
    accessTokenFormat: 'jwt',
    accessTokenTTL: ttl,
    jwt: { sign: { alg: jwk.alg } },
  };
}

function providerConfig({ key, people, clients }) {
  return {
    clients: [
      ...[...clients.values()].map((c) => ({
        client_id: c.client_id,
        client_secret: c.client_secret,
        client_name: c.name ?? c.client_id,
        grant_types: ['client_credentials', ...(c.test_login ? [TEST_GRANT] : [])],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
        id_token_signed_response_alg: jwk.alg,
      })),
      {
        // Public client for `lots login` (device authorization grant, RFC 8628).
        client_id: CLI_CLIENT,
        client_name: 'Lotsen CLI',
        grant_types: [DEVICE_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'none',
        id_token_signed_response_alg: jwk.alg,
      },
    ],
    jwks: { keys: [jwk] },
    cookies: {
      // Sessions live in memory and die with the process, so per-process cookie keys are enough.
      keys: [crypto.randomBytes(32).toString('base64url')],
      // All tenants share one host, and cookies ignore ports and (by default) paths: without
      // their own names, logging in to one tenant in a browser would log out of the others.
      names: { session: `_session_${key}`, interaction: `_interaction_${key}`, resume: `_interaction_resume_${key}` },
    },
    findAccount(ctx, sub) {
      const person = people.get(sub);
      if (!person) return undefined; // unknown sub: no account (the login form refuses it first)
      return { accountId: sub, claims: () => ({ sub, name: person.name }) };
    },
    extraTokenClaims(ctx, token) {
      const entry = token.accountId ? people.get(token.accountId) : clients.get(token.clientId);
      return entry ? lotsClaims(entry) : undefined;
    },
    features: {
      devInteractions: { enabled: true }, // plain login form: type the person's sub, any password
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true }, // for refresh tokens (`lots logout`); JWTs cannot be revoked
      resourceIndicators: {
        enabled: true,
        // Requests without `resource` get the Lotsen API; without this tokens would be opaque.
        defaultResource: () => resource,
        // Also for scope=openid: issue the JWT for the API, not an opaque userinfo token.
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, indicator) {
          if (indicator !== resource) throw new errors.InvalidTarget(`unknown resource ${indicator}, use ${resource}`);
          return resourceServerInfo();
        },
      },
    },
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      DeviceCode: 600,
      Grant: 14 * 86400,
      IdToken: 3600,
      Interaction: 3600,
      RefreshToken: 14 * 86400,
      Session: 14 * 86400,
    },
  };
}

async function createProvider(tenant, issuer) {
  const { key, people, clients } = tenant;
  const provider = new Provider(issuer, providerConfig(tenant));

  // The test grant: a real, provider-issued access token for a named person, no browser needed.
  // Only clients with "test_login": true may use it (the token endpoint checks grant_types).
  provider.registerGrantType(TEST_GRANT, async (ctx) => {
    const { client, params } = ctx.oidc;
    const person = people.get(params.subject);
    if (!person) throw new errors.InvalidGrant(`unknown subject ${JSON.stringify(params.subject ?? '')} in tenant ${key}`);
    if ((params.resource ?? resource) !== resource) throw new errors.InvalidTarget(`unknown resource, use ${resource}`);
    const scope = params.scope ?? resourceScope;
    const allowed = new Set(resourceScope.split(' '));
    if (!scope.split(' ').every((s) => allowed.has(s))) throw new errors.InvalidScope('scope not allowed', scope);

    // Same models as the device flow: a Grant, then an AccessToken for the API resource server,
    // so signing, format, lifetime and claims (extraTokenClaims) are exactly those of a real token.
    const grant = new provider.Grant({ accountId: person.sub, clientId: client.clientId });
    grant.addResourceScope(resource, scope);
    const at = new provider.AccessToken({
      accountId: person.sub, client, grantId: await grant.save(), gty: 'test_login', scope,
    });
    at.resourceServer = new provider.ResourceServer(resource, resourceServerInfo());
    ctx.body = {
      access_token: await at.save(),
      token_type: at.tokenType,
      expires_in: at.expiration,
      scope,
    };
  }, ['subject', 'scope', 'resource']);

  // devInteractions accepts any login name, and an unknown one ends in a server error a step
  // later; refuse it at the form instead. The provider reads the body we leave in request.body.
  // (ctx.path is the path below the tenant prefix.)
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path.startsWith('/interaction/') && ctx.is('urlencoded')) {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      ctx.request.body = Object.fromEntries(form);
      if (form.get('prompt') === 'login' && !people.has(form.get('login'))) {
        ctx.status = 400;
        ctx.body = `unknown login name ${JSON.stringify(form.get('login'))} in tenant ${key}; known: ${[...people.keys()].join(', ')}\n`;
        return;
      }
    }
    await next();
  });

  // Fail now on bad client metadata (the provider validates static clients lazily).
  for (const id of [...clients.keys(), CLI_CLIENT]) await provider.Client.find(id);

  provider.on('server_error', (ctx, err) => console.error(`oidc ${key}: server error`, err));
  // The token endpoint hides some reasons from clients (error_detail); a test log should show them.
  provider.on('grant.error', (ctx, err) => {
    if (err.error === 'authorization_pending') return; // normal while `lots login` polls
    console.error(`oidc ${key}: token request failed: ${err.error}: ${err.error_description}${err.error_detail ? ` (${err.error_detail})` : ''}`);
  });
  return provider;
}

// ---------------------------------------------------------------------------------------------
// Start: listen first, so `--port 0` works and the issuers name the real port.
// ---------------------------------------------------------------------------------------------

const server = http.createServer();
// Installed before anything slow, so a harness that gives up during start-up still gets exit 0.
function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections(); // keep-alive connections would otherwise hold the close
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
}).catch((err) => fail(`cannot listen on 127.0.0.1:${port}: ${err.message}`));
const base = `http://127.0.0.1:${server.address().port}`;

// Mounting: the provider routes on paths without the prefix and builds its own URLs (discovery,
// device verification_uri, login forms, interaction redirects) as `req.originalUrl` minus
// `req.url` + route, the way Express's app.use('/prefix', ...) leaves a request. So strip the
// prefix from req.url and keep the full path in req.originalUrl.
const handlers = new Map();
for (const tenant of tenantConfigs) {
  handlers.set(tenant.key, (await createProvider(tenant, `${base}/${tenant.key}`)).callback());
}
server.on('request', (req, res) => {
  const [, key, rest] = /^\/([^/?#]*)(.*)$/s.exec(req.url) ?? [];
  const handler = handlers.get(key);
  if (!handler || !(rest === '' || rest.startsWith('/') || rest.startsWith('?'))) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify({ error: 'not_found', issuers: [...handlers.keys()].sort().map((k) => `${base}/${k}`) })}\n`);
    return;
  }
  req.originalUrl = req.url;
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
  handler(req, res);
});
console.log(`ready ${base}`);
