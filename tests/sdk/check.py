"""External check: Genesys's own Python SDK (PureCloudPlatformClientV2) and a
third-party notifications client (koodaamo's genesys-notifications) work,
unchanged, against `presence-gateway simulate`.

Every REST answer is also fetched raw and run through the SDK's own
deserialiser, then walked key by key: a JSON key the SDK model does not know
(a misspelt field) or an enum value the SDK does not know (it turns those
into "outdated_sdk_version") is a failure. So the SDK checks the simulator's
field names and spellings, not our guess of them.

Usage: SIM_URL=http://127.0.0.1:PORT python check.py
Prints one PASS/FAIL line per check and a final "N passed, N failed".
"""

import asyncio
import json
import os
import sys
import time
import traceback
import urllib.request

import PureCloudPlatformClientV2 as gc
import websocket  # websocket-client, used the way the Java/.NET SDK helpers use a socket
from genesys_notifications import Channel  # koodaamo/genesys-notifications

SIM = os.environ["SIM_URL"].rstrip("/")
CLIENT_ID = os.environ.get("SIM_CLIENT_ID", "sim-client")
CLIENT_SECRET = os.environ.get("SIM_CLIENT_SECRET", "sim-secret")
ON_QUEUE = "e08eaf1b-ee47-4fa9-a231-1200e284798f"
BREAK = "227b37e2-f1d0-4dd0-8f50-badd7cf6d158"

results = {"passed": 0, "failed": 0}


def check(name):
    """Runs the decorated function now as one named check."""

    def run(fn):
        try:
            fn()
            results["passed"] += 1
            print(f"PASS {name}", flush=True)
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            results["failed"] += 1
            print(f"FAIL {name}: {exc}", flush=True)
            traceback.print_exc(file=sys.stderr)
        return fn

    return run


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------- helpers

api_client = gc.api_client.ApiClient(SIM)
deserialize = api_client._ApiClient__deserialize  # the SDK's own model mapper


def raw(method, path, body=None, auth=True):
    """A raw HTTP call; returns (status, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(SIM + path, data=data, method=method)
    if auth:
        req.add_header("Authorization", "Bearer " + api_client.access_token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (json.loads(text) if text else None)


def strict(obj, data, path, problems):
    """Walks `data` (raw JSON) beside `obj` (the SDK's deserialisation)."""
    if isinstance(data, list):
        expect(isinstance(obj, list), f"{path}: SDK gave {type(obj).__name__} for a list")
        for i, (o, d) in enumerate(zip(obj, data)):
            strict(o, d, f"{path}[{i}]", problems)
    elif hasattr(obj, "attribute_map"):
        if not isinstance(data, dict):
            problems.append(f"{path}: expected an object")
            return
        by_wire = {v: k for k, v in obj.attribute_map.items()}
        for key, value in data.items():
            if key not in by_wire:
                problems.append(f"{path}.{key}: not a field of {type(obj).__name__}")
            else:
                strict(getattr(obj, by_wire[key]), value, f"{path}.{key}", problems)
    elif obj == "outdated_sdk_version":
        problems.append(f"{path}: {data!r} is not in the SDK's enum")


def sdk_model(path, klass, method="GET", body=None):
    """GET (or other) `path`, deserialise as `klass` with the SDK and check it strictly."""
    status, data = raw(method, path, body)
    expect(status == 200, f"{method} {path}: HTTP {status} {data}")
    obj = deserialize(data, klass)
    problems = []
    strict(obj, data, klass, problems)
    expect(not problems, "; ".join(problems[:8]))
    return obj, data


def sim_post(path, body):
    return raw("POST", path, body, auth=False)


state = {}


# ---------------------------------------------------------------- REST via the SDK


@check("token via ApiClient.get_client_credentials_token")
def _():
    # The SDK derives the login host by replacing //api. with //login.;
    # a loopback URL has no //api., so the simulator's own base is used.
    api_client.get_client_credentials_token(CLIENT_ID, CLIENT_SECRET)
    expect(len(api_client.access_token) > 20, "no access_token")


@check("UsersApi.get_users with expand=presence,routingStatus")
def _():
    users = gc.UsersApi(api_client).get_users(page_size=50, expand=["presence", "routingStatus"])
    expect(users.total == 500 and len(users.entities) == 50, f"total {users.total}")
    expect(users.next_uri == "/api/v2/users?pageSize=50&pageNumber=2&expand=presence,routingStatus",
           f"nextUri {users.next_uri}")
    u = users.entities[0]
    expect(u.presence.presence_definition.system_presence, "presence not expanded")
    expect(u.routing_status.status in ("OFF_QUEUE", "IDLE", "INTERACTING", "NOT_RESPONDING", "COMMUNICATING"),
           f"routing {u.routing_status.status}")
    expect(u.division.name, "division name")
    state["users"] = [e.id for e in users.entities]
    sdk_model("/api/v2/users?pageSize=50&expand=presence,routingStatus", "UserEntityListing")


@check("UsersApi.get_user, 404 as ApiException")
def _():
    user = gc.UsersApi(api_client).get_user(state["users"][0], expand=["presence"])
    expect(user.id == state["users"][0], "same user")
    sdk_model(f"/api/v2/users/{user.id}?expand=presence,routingStatus", "User")
    try:
        gc.UsersApi(api_client).get_user("00000000-0000-4000-8000-000000000000")
        raise AssertionError("no error for an unknown user")
    except gc.rest.ApiException as e:
        expect(e.status == 404, f"status {e.status}")
        body = json.loads(e.body)
        obj = deserialize(body, "ErrorBody")
        expect(obj.code == "general.resource.not.found" and obj.status == 404, f"ErrorBody {body}")
        problems = []
        strict(obj, body, "ErrorBody", problems)
        expect(not problems, "; ".join(problems))


@check("PresenceApi.get_presencedefinitions (legacy, title case)")
def _():
    defs = gc.PresenceApi(api_client).get_presencedefinitions(page_size=100)
    by_id = {d.id: d for d in defs.entities}
    expect(by_id[ON_QUEUE].system_presence == "On Queue", f"{by_id[ON_QUEUE].system_presence}")
    labels = {d.language_labels["en_US"]: d for d in defs.entities}
    expect(labels["Lunch"].system_presence == "Meal" and labels["Lunch"].primary is False, "Lunch under Meal")
    expect(labels["Coaching"].system_presence == "Busy", "Coaching under Busy")
    sdk_model("/api/v2/presencedefinitions?pageSize=100", "OrganizationPresenceEntityListing")


@check("PresenceApi.get_presence_definitions (current, OnQueue) and get_systempresences")
def _():
    defs = gc.PresenceApi(api_client).get_presence_definitions()
    oq = [d for d in defs.entities if d.id == ON_QUEUE][0]
    expect(oq.system_presence == "OnQueue", oq.system_presence)
    sdk_model("/api/v2/presence/definitions", "OrganizationPresenceDefinitionEntityListing")
    sys_presences = gc.PresenceApi(api_client).get_systempresences()
    expect(len(sys_presences) == 10, f"{len(sys_presences)} system presences")
    sdk_model("/api/v2/systempresences", "list[SystemPresence]")


@check("PresenceApi.patch_user_presences_purecloud + get + bulk")
def _():
    api = gc.PresenceApi(api_client)
    user = state["users"][1]
    body = gc.UserPresence()
    body.presence_definition = gc.PresenceDefinition()
    body.presence_definition.id = BREAK
    body.message = "back in 10"
    got = api.patch_user_presences_purecloud(user, body)
    expect(got.presence_definition.id == BREAK and got.presence_definition.system_presence == "Break",
           f"{got.presence_definition}")
    expect(got.message == "back in 10" and got.modified_date is not None, "message/modifiedDate")
    sdk_model(f"/api/v2/users/{user}/presences/purecloud", "UserPresence")
    bulk = api.get_users_presences_purecloud_bulk(id=state["users"][:5])
    expect(len(bulk) == 5 and bulk[1].user_id == user, "bulk ids")
    sdk_model("/api/v2/users/presences/purecloud/bulk?id=" + ",".join(state["users"][:5]), "list[UcUserPresence]")


@check("UsersApi routing status follows On Queue")
def _():
    user = state["users"][2]
    api = gc.PresenceApi(api_client)
    body = gc.UserPresence()
    body.presence_definition = gc.PresenceDefinition()
    body.presence_definition.id = ON_QUEUE
    api.patch_user_presences_purecloud(user, body)
    rs = gc.UsersApi(api_client).get_user_routingstatus(user)
    expect(rs.status == "IDLE" and rs.start_time is not None, f"routing {rs.status}")
    sdk_model(f"/api/v2/users/{user}/routingstatus", "RoutingStatus")
    sdk_model("/api/v2/routing/queues?pageSize=5", "QueueEntityListing")


# ---------------------------------------------------------------- notifications


@check("NotificationsApi channel, subscribe, head")
def _():
    api = gc.NotificationsApi(api_client)
    ch = api.post_notifications_channels()
    expect(ch.connect_uri.endswith("/channels/" + ch.id) and ch.expires is not None, f"{ch}")
    user = state["users"][3]
    topic = gc.ChannelTopic()
    topic.id = f"v2.users.{user}?presence&routingStatus"
    subs = api.post_notifications_channel_subscriptions(ch.id, [topic])
    expect(subs.entities[0].id == topic.id, f"{subs}")
    api.head_notifications_channel(ch.id)  # raises on 404
    listing, _ = sdk_model(f"/api/v2/notifications/channels/{ch.id}/subscriptions", "ChannelTopicEntityListing")
    expect(listing.entities[0].state == "Permitted", "Permitted")
    sdk_model("/api/v2/notifications/channels", "ChannelEntityListing")
    state["channel"] = ch
    state["watched"] = user


@check("connectUri socket: ping/pong, presence event after POST /sim/users/{id}/presence")
def _():
    ch, user = state["channel"], state["watched"]
    ws = websocket.create_connection(ch.connect_uri, timeout=10)  # bare connectUri, like the SDK helpers
    try:
        ws.send(json.dumps({"message": "ping"}))
        deadline = time.time() + 10
        seen_pong = False
        while time.time() < deadline and not seen_pong:
            m = json.loads(ws.recv())
            seen_pong = m.get("topicName") == "channel.metadata" and m["eventBody"]["message"] == "pong"
        expect(seen_pong, "no pong")
        status, _ = sim_post(f"/sim/users/{user}/presence", {"systemPresence": "ON_QUEUE"})
        expect(status == 200, f"/sim presence {status}")
        got = {}
        deadline = time.time() + 10
        while time.time() < deadline and len(got) < 2:
            m = json.loads(ws.recv())
            if m.get("topicName") in (f"v2.users.{user}.presence", f"v2.users.{user}.routingStatus"):
                got[m["topicName"].rsplit(".", 1)[1]] = m
        expect(set(got) == {"presence", "routingStatus"}, f"events {list(got)}")
        for m in got.values():
            expect(m["version"] == "2" and m["metadata"]["CorrelationId"], f"envelope {m}")
        pres = got["presence"]["eventBody"]
        obj = deserialize(pres, "PresenceEventUserPresence")
        problems = []
        strict(obj, pres, "PresenceEventUserPresence", problems)
        expect(not problems, "; ".join(problems))
        expect(obj.presence_definition.system_presence == "ON_QUEUE", obj.presence_definition.system_presence)
        rs = got["routingStatus"]["eventBody"]
        obj = deserialize(rs, "UserRoutingStatusUserRoutingStatus")
        strict(obj, rs, "UserRoutingStatusUserRoutingStatus", problems)
        expect(not problems, "; ".join(problems))
        expect(obj.routing_status.status == "IDLE", obj.routing_status.status)
    finally:
        ws.close()


@check("genesys-notifications Channel: WS subscribe, heartbeat, event")
def _():
    ch = gc.NotificationsApi(api_client).post_notifications_channels()
    user = state["users"][4]
    topic = f"v2.users.{user}.activity"

    async def run():
        chan = Channel(ch.connect_uri, [topic], lifetime=3600)
        await chan.initialize()  # connect + {"message":"subscribe"} over the socket
        kinds = set()
        event = None
        deadline = time.time() + 15
        changed = False
        while time.time() < deadline and not (event and "heartbeat" in kinds):
            try:
                data = await asyncio.wait_for(chan._connection.recv(), timeout=2)
            except asyncio.TimeoutError:
                continue
            msg = json.loads(data)
            if msg.get("result") == "200":
                kinds.add("subscribed")
                if not changed:
                    changed = True
                    status, _ = sim_post(f"/sim/users/{user}/presence", {"systemPresence": "BREAK"})
                    expect(status == 200, "sim presence")
            if msg.get("topicName") == "channel.metadata":
                kinds.add("heartbeat")
            # The client's own classifier: it returns real notifications and
            # swallows heartbeats, pongs and subscription acks.
            out = chan.process(msg)
            if out is not None and out.get("topicName") == topic:
                event = out
        await chan.close()
        return kinds, event

    kinds, event = asyncio.run(run())
    expect("subscribed" in kinds, f"no subscribe ack ({kinds})")
    expect("heartbeat" in kinds, f"no heartbeat ({kinds})")
    expect(event is not None, "no activity event")
    body = event["eventBody"]
    expect(body["presence"]["presenceDefinition"]["systemPresence"] == "BREAK", f"{body}")
    # The REST side sees the WebSocket-level subscription.
    listing, _ = sdk_model(f"/api/v2/notifications/channels/{ch.id}/subscriptions", "ChannelTopicEntityListing")
    expect([e.id for e in listing.entities] == [topic], f"{listing}")


# ---------------------------------------------------------------- analytics and errors


@check("analytics users details query through the SDK")
def _():
    user = state["watched"]
    q = gc.UserDetailsQuery()
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
    q.interval = f"{iso(now - 600)}/{iso(now + 600)}"
    pred = gc.UserDetailQueryPredicate()
    pred.dimension = "userId"
    pred.value = user
    f = gc.UserDetailQueryFilter()
    f.type = "or"
    f.predicates = [pred]
    q.user_filters = [f]
    resp = gc.UsersApi(api_client).post_analytics_users_details_query(q)
    d = resp.user_details[0]
    expect(d.user_id == user, "user")
    expect(d.primary_presence[-1].system_presence == "ON_QUEUE", f"{d.primary_presence[-1]}")
    expect(d.routing_status[-1].routing_status == "IDLE", f"{d.routing_status[-1]}")
    sdk_model("/api/v2/analytics/users/details/query", "AnalyticsUserDetailsQueryResponse", "POST",
              {"interval": q.interval, "userFilters": [{"type": "or", "predicates": [{"dimension": "userId", "value": user}]}]})


@check("429 as the SDK sees it: honours Retry-After, then succeeds")
def _():
    # The SDK's HTTP layer (urllib3) retries a 429 that carries Retry-After,
    # sleeping that many seconds, exactly as it does against Genesys.
    before = raw("GET", "/sim/stats", auth=False)[1]["counters"]["rateLimitedInjected"]
    status, _ = sim_post("/sim/faults", {"kind": "rate_limit", "count": 1})
    expect(status == 200, "fault")
    started = time.time()
    users = gc.UsersApi(api_client).get_users(page_size=1)
    waited = time.time() - started
    expect(len(users.entities) == 1, "users after the retry")
    after = raw("GET", "/sim/stats", auth=False)[1]["counters"]["rateLimitedInjected"]
    expect(after == before + 1, f"one 429 sent ({before} -> {after})")
    expect(waited >= 0.9, f"retried after {waited:.2f}s, before Retry-After")
    status, body = raw("GET", "/api/v2/users?pageSize=1")
    expect(status == 200, "budget left")
    sim_post("/sim/faults", {"kind": "rate_limit", "count": 1})
    status, body = raw("GET", "/api/v2/users?pageSize=1")  # urllib without retries
    expect(status == 429, f"status {status}")
    err = deserialize(body, "ErrorBody")
    problems = []
    strict(err, body, "ErrorBody", problems)
    expect(not problems, "; ".join(problems))
    expect(err.code == "too.many.requests.retry.after" and err.status == 429, f"{body}")


print(f"{results['passed']} passed, {results['failed']} failed", flush=True)
sys.exit(1 if results["failed"] else 0)
