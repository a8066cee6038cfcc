"""Writes enums.json: the official enum values (`allowed_values`) of every
model the JavaScript check reads, and of the models they contain, taken from
Genesys's Python SDK (PureCloudPlatformClientV2, generated from the same
swagger as the JavaScript SDK, whose typings spell enums as plain `string`).

Usage: <venv from tests/sdk/run.sh>/bin/python gen_enums.py VERSION > enums.json
"""

import importlib
import inspect
import json
import re
import sys

import PureCloudPlatformClientV2 as gc

ROOTS = [
    "UserEntityListing", "User", "OrganizationPresenceEntityListing",
    "OrganizationPresenceDefinitionEntityListing", "SystemPresence", "UserPresence",
    "UcUserPresence", "RoutingStatus", "QueueEntityListing", "QueueMemberEntityListing",
    "WrapupCodeEntityListing", "Conversation", "ChannelTopicEntityListing", "Channel",
    "ChannelEntityListing", "ErrorBody", "PresenceEventUserPresence",
    "UserRoutingStatusUserRoutingStatus", "ConversationEventTopicConversation",
]


def model_types(t):
    return re.findall(r"[A-Z][A-Za-z0-9]+", t)


out = {}
seen = set()
todo = list(ROOTS)
while todo:
    name = todo.pop()
    if name in seen or not hasattr(gc, name):
        continue
    seen.add(name)
    cls = getattr(gc, name)
    src = inspect.getsource(importlib.import_module(cls.__module__))
    enums = {}
    for attr, wire in cls().attribute_map.items():
        m = re.search(r"@" + attr + r"\.setter\n(.*?)(?=\n    @|\Z)", src, re.S)
        a = m and re.search(r"allowed_values = (\[.*?\])\n", m.group(1))
        if a:
            enums[wire] = json.loads(a.group(1))
    if enums:
        out[name] = enums
    for t in cls().swagger_types.values():
        todo.extend(x for x in model_types(t) if x not in ("str", "int", "bool", "float", "datetime", "date", "object", "dict", "list"))
json.dump({"source": "allowed_values of PureCloudPlatformClientV2 " + sys.argv[1] if len(sys.argv) > 1 else "allowed_values of PureCloudPlatformClientV2",
           "models": dict(sorted(out.items()))}, sys.stdout, indent=1, sort_keys=False)
print()
