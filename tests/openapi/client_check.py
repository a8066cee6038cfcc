"""A client generated from the served description, used as an integrator would.

run.sh generates the package `presence_gateway_client` with
openapi-python-client from GET /api/v1/openapi.json into $CLIENT_DIR; this
script imports it and, against the running gateways:

1. lists the agents (GET /api/v1/agents, auth off);
2. reads one agent and its ETag, changes its presence with If-Match
   (PATCH /api/v1/agents/{id}/presence) and sees the new version;
3. sends the now stale ETag again: 412 with the JSON error model;
4. lists the agents with a supervisor API key on the auth-on gateway, and
   gets 401 without one.

Usage: CLIENT_DIR=… GATEWAY_URL=… AUTH_GATEWAY_URL=… SUPERVISOR_KEY=… python client_check.py
"""

import os
import sys

sys.path.insert(0, os.environ["CLIENT_DIR"])

from presence_gateway_client import AuthenticatedClient, Client  # noqa: E402
from presence_gateway_client.api.agents import get_agent, list_agents  # noqa: E402
from presence_gateway_client.api.writes import patch_presence  # noqa: E402
from presence_gateway_client.models import Error, PresenceChange, Snapshot  # noqa: E402

failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def main():
    client = Client(base_url=os.environ["GATEWAY_URL"], raise_on_unexpected_status=True)
    r = list_agents.sync_detailed(client=client)
    expect(r.status_code == 200 and isinstance(r.parsed, Snapshot), "list agents: 200, a Snapshot")
    agents = r.parsed.agents
    expect(len(agents) > 0, f"list agents: {len(agents)} agents")

    changed = None
    for attempt in range(20):
        a = agents[attempt % len(agents)]
        g = get_agent.sync_detailed(a.id, client=client)
        etag = g.headers.get("etag")
        current = g.parsed.presence.system_presence if g.parsed.presence else None
        target = "BREAK" if current != "BREAK" else "AVAILABLE"
        p = patch_presence.sync_detailed(
            a.id,
            client=client,
            body=PresenceChange.from_dict({"presence": target, "reason": "generated client check"}),
            if_match=etag,
        )
        # 409: the transition policy (the agent is interacting); 412: the
        # simulated org's churn changed the agent between the read and the
        # write. Either way a client tries another agent (or reads again).
        if p.status_code in (409, 412):
            continue
        expect(p.status_code == 200, f"PATCH presence {a.id} to {target} with If-Match {etag}: {p.status_code}")
        if p.status_code == 200:
            expect(p.parsed.presence.system_presence == target, f"the answer shows {target}")
            expect(p.parsed.version > g.parsed.version, "the version moved")
            expect(p.headers.get("etag") == f'"{p.parsed.version}"', "the new ETag is the new version")
            changed = (a.id, etag)
        break
    expect(changed is not None, "one agent's presence changed")

    if changed:
        agent_id, stale = changed
        p = patch_presence.sync_detailed(
            agent_id, client=client, body=PresenceChange.from_dict({"presence": "AVAILABLE"}), if_match=stale
        )
        expect(p.status_code == 412, f"stale If-Match: {p.status_code}")
        expect(isinstance(p.parsed, Error) and p.parsed.error == "precondition_failed", "the JSON error model")

    authed = AuthenticatedClient(base_url=os.environ["AUTH_GATEWAY_URL"], token=os.environ["SUPERVISOR_KEY"])
    r = list_agents.sync_detailed(client=authed)
    expect(r.status_code == 200 and len(r.parsed.agents) > 0, "list agents with a supervisor key: 200")
    anon = Client(base_url=os.environ["AUTH_GATEWAY_URL"])
    r = list_agents.sync_detailed(client=anon)
    expect(r.status_code == 401 and isinstance(r.parsed, Error), f"list agents without a key: {r.status_code}")

    print(f"generated client check: {'ok' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
