#!/usr/bin/env node
// Lotsen development OpenID provider: a real, certified provider (panva/oidc-provider) with
// in-memory storage, configured from a small JSON file. For tests and local development only.
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
const ALGS = { RS256: ['rsa', { modulusLength: 2048 }], ES256: ['ec', { namedCurve: 'P-256' }] };

const USAGE = `usage: node server.mjs --config FILE [--port P] [--keys FILE] [--alg RS256|ES256] [--ttl SECONDS]
  --config FILE   JSON config (audience, people, clients); required
  --port P        port on 127.0.0.1 (default 0 = any free port; read it from the "ready" line)
  --keys FILE     private JWKS; created with a fresh key if missing, FILE.pem gets the PKCS#8 key
                  (default: an in-memory key that is never written)
  --alg ALG       RS256 (default) or ES256, the signing algorithm of a newly created key
  --ttl SECONDS   access token lifetime (default 3600)`;

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
// Config: who exists. Validated up front so a typo fails at start, not in the middle of a test.
// ---------------------------------------------------------------------------------------------

const config = JSON.parse(fs.readFileSync(flags.config, 'utf8'));
if (typeof config.audience !== 'string' || !config.audience) fail('config: "audience" must be a non-empty string');
const people = new Map();
for (const p of config.people ?? []) {
  if (!p.sub || !p.name || !p.role) fail(`config: every person needs sub, name and role: ${JSON.stringify(p)}`);
  if (people.has(p.sub)) fail(`config: duplicate person ${p.sub}`);
  people.set(p.sub, p);
}
const clients = new Map();
for (const c of config.clients ?? []) {
  if (!c.client_id || !c.client_secret || !c.role) fail(`config: every client needs client_id, client_secret and role: ${JSON.stringify(c)}`);
  if (clients.has(c.client_id) || c.client_id === CLI_CLIENT) fail(`config: duplicate or reserved client_id ${c.client_id}`);
  clients.set(c.client_id, c);
}
// Resource indicators (RFC 8707) must be absolute URIs, but the audience the API checks ("lots")
// need not be one; the provider maps the one known indicator to that audience.
const resource = config.resource ?? (URL.canParse(config.audience) ? config.audience : 'urn:lots:api');
const resourceScope = config.scope ?? 'lots';

// ---------------------------------------------------------------------------------------------
// Signing key: loaded from --keys, or created (and written) when the file is missing.
// Deleting the file and restarting rotates the key (new kid).
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

const oidcConfig = {
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
  // Sessions live in memory and die with the process, so per-process cookie keys are enough.
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount(ctx, sub) {
    const person = people.get(sub);
    if (!person) return undefined; // unknown login names fail the login
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

// ---------------------------------------------------------------------------------------------
// Start: listen first, so `--port 0` works and the issuer names the real port.
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
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, oidcConfig);

// The test grant: a real, provider-issued access token for a named person, no browser needed.
// Only clients with "test_login": true may use it (the token endpoint checks grant_types).
provider.registerGrantType(TEST_GRANT, async (ctx) => {
  const { client, params } = ctx.oidc;
  const person = people.get(params.subject);
  if (!person) throw new errors.InvalidGrant(`unknown subject ${JSON.stringify(params.subject ?? '')}`);
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
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path.startsWith('/interaction/') && ctx.is('urlencoded')) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    ctx.request.body = Object.fromEntries(form);
    if (form.get('prompt') === 'login' && !people.has(form.get('login'))) {
      ctx.status = 400;
      ctx.body = `unknown login name ${JSON.stringify(form.get('login'))}; known: ${[...people.keys()].join(', ')}\n`;
      return;
    }
  }
  await next();
});

// Fail now on bad client metadata (the provider validates static clients lazily).
for (const id of [...clients.keys(), CLI_CLIENT]) await provider.Client.find(id);

provider.on('server_error', (ctx, err) => console.error('oidc: server error', err));
// The token endpoint hides some reasons from clients (error_detail); a test log should show them.
provider.on('grant.error', (ctx, err) => {
  if (err.error === 'authorization_pending') return; // normal while `lots login` polls
  console.error(`oidc: token request failed: ${err.error}: ${err.error_description}${err.error_detail ? ` (${err.error_detail})` : ''}`);
});

server.on('request', provider.callback());
console.log(`ready ${issuer}`);
