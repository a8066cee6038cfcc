// External check: Genesys's official JavaScript SDK (npm
// purecloud-platform-client-v2), pointed at `presence-gateway simulate` with
// its public setGateway({protocol:'http', host, port}), works unchanged, and
// every answer and event it reads conforms field by field and enum by enum.
//
// Fields: each JSON key must be a property of the SDK's TypeScript model
// (index.d.ts, parsed with the TypeScript compiler API), recursively through
// nested models and arrays. Enums: the JavaScript typings spell enums as
// `string`, so the official values come from enums.json, generated from the
// Python SDK built from the same swagger (gen_enums.py); a value outside them
// is a failure.
//
// Usage: SIM_URL=http://127.0.0.1:PORT node check.js
// Prints one PASS/FAIL line per check and a final "N passed, N failed".
'use strict';

const fs = require('fs');
const path = require('path');
const ts = require('typescript');
const WebSocket = require('ws');
const platformClient = require('purecloud-platform-client-v2');

const SIM = new URL(process.env.SIM_URL);
const CLIENT_ID = process.env.SIM_CLIENT_ID || 'sim-client';
const CLIENT_SECRET = process.env.SIM_CLIENT_SECRET || 'sim-secret';
const ON_QUEUE = 'e08eaf1b-ee47-4fa9-a231-1200e284798f';
const BREAK = '227b37e2-f1d0-4dd0-8f50-badd7cf6d158';

// ---------------------------------------------------------------- the SDK's models

/** interface name → { property → TypeNode } from the SDK's typings. */
function readModels() {
  const file = require.resolve('purecloud-platform-client-v2/index.d.ts');
  const src = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false);
  const models = new Map();
  const visit = (node) => {
    if (ts.isInterfaceDeclaration(node)) {
      const props = new Map();
      for (const m of node.members) {
        if (ts.isPropertySignature(m) && m.name && m.type) props.set(m.name.text, m.type);
      }
      if (!models.has(node.name.text)) models.set(node.name.text, props);
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return models;
}

const MODELS = readModels();
const ENUMS = JSON.parse(fs.readFileSync(path.join(__dirname, 'enums.json'), 'utf8')).models;

/** Walks `data` against `type` (a TypeNode, or a model name); pushes problems. */
function strict(data, type, where, problems, model, field) {
  if (data === null || data === undefined) return;
  if (typeof type === 'string') {
    const props = MODELS.get(type);
    if (!props) return problems.push(`${where}: no model ${type} in the SDK`);
    if (typeof data !== 'object' || Array.isArray(data)) return problems.push(`${where}: ${type} is an object`);
    for (const [k, v] of Object.entries(data)) {
      if (!props.has(k)) problems.push(`${where}.${k}: not a field of ${type}`);
      else strict(v, props.get(k), `${where}.${k}`, problems, type, k);
    }
    return;
  }
  if (ts.isTypeReferenceNode(type)) {
    const name = type.typeName.getText ? nameOf(type.typeName) : '';
    if (name === 'Array' && type.typeArguments) {
      if (!Array.isArray(data)) return problems.push(`${where}: expected an array`);
      data.forEach((d, i) => strict(d, type.typeArguments[0], `${where}[${i}]`, problems, model, field));
      return;
    }
    return strict(data, name.replace(/^Models\./, ''), where, problems);
  }
  if (ts.isArrayTypeNode(type)) {
    if (!Array.isArray(data)) return problems.push(`${where}: expected an array`);
    data.forEach((d, i) => strict(d, type.elementType, `${where}[${i}]`, problems, model, field));
    return;
  }
  switch (type.kind) {
    case ts.SyntaxKind.StringKeyword: {
      if (typeof data !== 'string') return problems.push(`${where}: expected a string, got ${JSON.stringify(data)}`);
      const allowed = ENUMS[model] && ENUMS[model][field];
      if (allowed && !allowed.includes(data)) problems.push(`${where}: ${JSON.stringify(data)} is not in ${model}.${field} [${allowed.join(', ')}]`);
      return;
    }
    case ts.SyntaxKind.NumberKeyword:
      if (typeof data !== 'number') problems.push(`${where}: expected a number, got ${JSON.stringify(data)}`);
      return;
    case ts.SyntaxKind.BooleanKeyword:
      if (typeof data !== 'boolean') problems.push(`${where}: expected a boolean, got ${JSON.stringify(data)}`);
      return;
    default:
      return; // maps ({ [key: string]: … }), object, any: free-form
  }
}

function nameOf(n) {
  return ts.isQualifiedName(n) ? `${nameOf(n.left)}.${n.right.text}` : n.text;
}

/** Throws with the first problems when `data` does not conform to `type`. */
function conform(data, type, what) {
  const problems = [];
  if (type.endsWith('[]')) {
    if (!Array.isArray(data)) throw new Error(`${what}: not an array`);
    data.forEach((d, i) => strict(d, type.slice(0, -2), `${what}[${i}]`, problems));
  } else {
    strict(data, type, what, problems);
  }
  if (problems.length) throw new Error(problems.slice(0, 8).join('; '));
  return data;
}

// ---------------------------------------------------------------- harness

const results = { passed: 0, failed: 0 };
const checks = [];
const check = (name, fn) => checks.push([name, fn]);
const expect = (cond, msg) => {
  if (!cond) throw new Error(msg);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function simCall(method, p, body) {
  const r = await fetch(new URL(p, SIM), {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: await r.json().catch(() => null) };
}

/** Waits up to `ms` for `pred()` to return a truthy value. */
async function until(ms, what, pred) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const client = platformClient.ApiClient.instance;
client.setGateway({ protocol: SIM.protocol.replace(':', ''), host: SIM.hostname, port: Number(SIM.port) });
const users = new platformClient.UsersApi();
const presence = new platformClient.PresenceApi();
const routing = new platformClient.RoutingApi();
const conversations = new platformClient.ConversationsApi();
const notifications = new platformClient.NotificationsApi();
const state = {};

// ---------------------------------------------------------------- the checker itself

check('the checker refuses the deviations issue 17 found (so it can fail)', async () => {
  const bad = [
    [{ participants: [{ startTime: '2026-01-01T00:00:00.000Z' }] }, 'ConversationEventTopicConversation', 'participants[0].startTime'],
    [{ participants: [{ chats: [{ muted: false }] }] }, 'ConversationEventTopicConversation', 'chats[0].muted'],
    [{ participants: [{ emails: [{ state: 'terminated' }] }] }, 'Conversation', 'emails[0].state'],
    [{ selfUri: '/api/v2/conversations/x' }, 'ConversationEventTopicConversation', 'selfUri'],
    [{ total: 1 }, 'QueueMemberEntityListing', 'total'],
    [{ systemPresence: 'On Queue' }, 'OrganizationPresenceDefinition', 'systemPresence'],
  ];
  for (const [data, type, hint] of bad) {
    const problems = [];
    strict(data, type, type, problems);
    expect(problems.some((p) => p.includes(hint.split('.').pop())), `${type} accepted ${JSON.stringify(data)}`);
  }
});

// ---------------------------------------------------------------- REST

check('loginClientCredentialsGrant through setGateway', async () => {
  const auth = await client.loginClientCredentialsGrant(CLIENT_ID, CLIENT_SECRET);
  expect(auth.accessToken && auth.accessToken.length > 20, 'no access token');
});

check('UsersApi.getUsers (expand presence, routingStatus) and getUser 404 as ErrorBody', async () => {
  const page = conform(await users.getUsers({ pageSize: 50, expand: ['presence', 'routingStatus'] }), 'UserEntityListing', 'UserEntityListing');
  expect(page.entities.length === 50 && page.total >= 50, `total ${page.total}`);
  state.users = page.entities.map((u) => u.id);
  conform(await users.getUser(state.users[0], { expand: ['presence', 'routingStatus'] }), 'User', 'User');
  try {
    await users.getUser('00000000-0000-4000-8000-000000000000');
    throw new Error('no error for an unknown user');
  } catch (e) {
    // The SDK rejects with the parsed ErrorBody itself.
    expect(e.status === 404, `status ${e.status}`);
    const body = conform({ ...e }, 'ErrorBody', 'ErrorBody');
    expect(body.code === 'general.resource.not.found', JSON.stringify(body));
  }
});

check('PresenceApi definitions (legacy and current) and system presences', async () => {
  conform(await presence.getPresencedefinitions({ pageSize: 100 }), 'OrganizationPresenceEntityListing', 'legacy');
  const cur = conform(await presence.getPresenceDefinitions0({}), 'OrganizationPresenceDefinitionEntityListing', 'current');
  expect(cur.entities.some((d) => d.id === ON_QUEUE && d.systemPresence === 'OnQueue'), 'OnQueue');
  const all = conform(await presence.getPresenceDefinitions0({ deactivated: 'true' }), 'OrganizationPresenceDefinitionEntityListing', 'current+deactivated');
  expect(all.entities.some((d) => d.deactivated === true), 'a deactivated definition');
  conform(await presence.getSystempresences(), 'SystemPresence[]', 'SystemPresence');
});

check('PresenceApi patch/get/bulk presences', async () => {
  const user = state.users[1];
  const got = conform(
    await presence.patchUserPresencesPurecloud(user, { presenceDefinition: { id: BREAK }, message: 'back in 10' }),
    'UserPresence', 'UserPresence');
  expect(got.presenceDefinition.id === BREAK && got.message === 'back in 10', JSON.stringify(got));
  conform(await presence.getUserPresencesPurecloud(user), 'UserPresence', 'UserPresence');
  const bulk = conform(await presence.getUsersPresencesPurecloudBulk({ id: state.users.slice(0, 5) }), 'UcUserPresence[]', 'UcUserPresence');
  expect(bulk.length === 5 && bulk[1].userId === user, 'bulk ids');
});

check('routing status, queues, queue members, wrap-up codes', async () => {
  const user = state.users[2];
  await presence.patchUserPresencesPurecloud(user, { presenceDefinition: { id: ON_QUEUE } });
  const rs = conform(await users.getUserRoutingstatus(user), 'RoutingStatus', 'RoutingStatus');
  expect(rs.status === 'IDLE', rs.status);
  const queues = conform(await routing.getRoutingQueues({ pageSize: 5 }), 'QueueEntityListing', 'QueueEntityListing');
  conform(await routing.getRoutingQueueMembers(queues.entities[0].id, { pageSize: 100 }), 'QueueMemberEntityListing', 'QueueMemberEntityListing');
  const codes = conform(await routing.getRoutingWrapupcodes({ pageSize: 100 }), 'WrapupCodeEntityListing', 'WrapupCodeEntityListing');
  expect(codes.entities.length > 0 && codes.entities.every((c) => c.id && c.name), 'wrap-up codes');
  state.wrapupIds = new Set(codes.entities.map((c) => c.id));
});

// ---------------------------------------------------------------- notifications and conversations

check('notifications: presence and routing status events conform', async () => {
  const ch = conform(await notifications.postNotificationsChannels(), 'Channel', 'Channel');
  // Someone off queue now (other checks may have run against this simulator).
  const truth = (await simCall('GET', '/sim/state')).json.users;
  const user = truth.find((u) => u.presence.systemPresence !== 'ON_QUEUE' && u.conversations.length === 0).id;
  const topics = [{ id: `v2.users.${user}?presence&routingStatus` }];
  conform(await notifications.postNotificationsChannelSubscriptions(ch.id, topics), 'ChannelTopicEntityListing', 'ChannelTopicEntityListing');
  const events = await collect(ch.connectUri, async () => {
    const r = await simCall('POST', `/sim/users/${user}/presence`, { systemPresence: 'ON_QUEUE' });
    expect(r.status === 200, `/sim presence ${r.status}`);
  }, (seen) => seen.some((m) => m.topicName.endsWith('.presence')) && seen.some((m) => m.topicName.endsWith('.routingStatus')));
  for (const m of events) {
    expect(m.version === '2' && m.metadata && m.metadata.CorrelationId, `envelope ${JSON.stringify(m)}`);
    if (m.topicName.endsWith('.presence')) conform(m.eventBody, 'PresenceEventUserPresence', 'PresenceEventUserPresence');
    if (m.topicName.endsWith('.routingStatus')) conform(m.eventBody, 'UserRoutingStatusUserRoutingStatus', 'UserRoutingStatusUserRoutingStatus');
  }
});

check('conversations of every media: events (event model) and GET /conversations/{id} (REST model)', async () => {
  const ch = await notifications.postNotificationsChannels();
  const page = await users.getUsers({ pageSize: 500 });
  const topics = page.entities.map((u) => ({ id: `v2.users.${u.id}.conversations` }));
  await notifications.putNotificationsChannelSubscriptions(ch.id, topics);
  const media = new Set();
  const restMedia = new Set();
  const problems = [];
  let wrapups = 0;
  const events = await collect(ch.connectUri, async () => {
    await simCall('POST', '/sim/churn', { eventsPerSecond: 300 });
  }, async (seen) => {
    for (const m of seen.splice(0)) {
      const body = m.eventBody;
      strict(body, 'ConversationEventTopicConversation', 'ConversationEventTopicConversation', problems);
      for (const p of body.participants || []) {
        for (const [k, name] of [['calls', 'voice'], ['chats', 'chat'], ['emails', 'email'], ['messages', 'message']]) {
          if ((p[k] || []).length) media.add(name);
        }
        if (p.wrapup && p.wrapup.code) {
          wrapups += 1;
          if (!state.wrapupIds.has(p.wrapup.code)) problems.push(`wrapup.code ${p.wrapup.code} is not a wrap-up code id`);
        }
      }
      if (restMedia.size < 4) {
        try {
          const c = await conversations.getConversation(body.id);
          strict(c, 'Conversation', 'Conversation', problems);
          for (const p of c.participants) {
            for (const [k, name] of [['calls', 'voice'], ['chats', 'chat'], ['emails', 'email'], ['messages', 'message']]) {
              if ((p[k] || []).length) restMedia.add(name);
            }
          }
        } catch (e) {
          if (e.status !== 404) throw e; // ended and forgotten meanwhile
        }
      }
    }
    return (media.size === 4 && restMedia.size === 4 && wrapups > 0) || problems.length > 0;
  }, 30000);
  await simCall('POST', '/sim/churn', { eventsPerSecond: 0 });
  expect(problems.length === 0, problems.slice(0, 8).join('; '));
  expect(media.size === 4 && restMedia.size === 4, `media seen: events ${[...media]}, REST ${[...restMedia]}`);
  expect(wrapups > 0 && events !== undefined, 'no wrap-up seen');
});

/**
 * Connects to `connectUri`, runs `trigger` once the socket is open, and
 * gathers non-heartbeat frames until `done(seen)` is true (or `ms` pass).
 */
function collect(connectUri, trigger, done, ms = 10000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(connectUri);
    const seen = [];
    const all = [];
    let busy = false;
    let arrived = 0;
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`timed out; saw ${all.map((m) => m.topicName).join(', ')}`));
    }, ms);
    ws.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    ws.on('open', () => trigger().catch((e) => {
      clearTimeout(timer);
      ws.close();
      reject(e);
    }));
    ws.on('message', async (data) => {
      const m = JSON.parse(data.toString());
      if (!m.topicName || m.topicName === 'channel.metadata') return;
      seen.push(m);
      all.push(m);
      arrived += 1;
      if (busy) return;
      busy = true;
      try {
        // Frames that arrive while `done` runs are looked at in the next round.
        let checked = -1;
        while (checked !== arrived) {
          checked = arrived;
          if (await done(seen)) {
            clearTimeout(timer);
            ws.close();
            resolve(all);
            return;
          }
        }
      } catch (e) {
        clearTimeout(timer);
        ws.close();
        reject(e);
      } finally {
        busy = false;
      }
    });
  });
}

// ---------------------------------------------------------------- run

(async () => {
  expect(MODELS.size > 1000 && MODELS.has('ConversationEventTopicConversation'), 'SDK typings not parsed');
  for (const [name, fn] of checks) {
    try {
      await fn();
      results.passed += 1;
      console.log(`PASS ${name}`);
    } catch (e) {
      results.failed += 1;
      console.log(`FAIL ${name}: ${e && e.message ? e.message : JSON.stringify(e)}`);
    }
  }
  console.log(`${results.passed} passed, ${results.failed} failed`);
  process.exit(results.failed ? 1 : 0);
})();
