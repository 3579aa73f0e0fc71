"""Every frame a test sends or receives is checked against `chinwag schema`'s output.

The schema is taken from the command itself (not from the Python function behind it), so
these checks test what bots in other languages are given.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from typing import Any

import jsonschema


@functools.cache
def _validators() -> tuple[jsonschema.protocols.Validator, jsonschema.protocols.Validator]:
    output = subprocess.run(
        [sys.executable, "-m", "server", "schema"], check=True, capture_output=True, text=True
    ).stdout
    schema = json.loads(output)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    client, server = schema["oneOf"]
    defs = schema["$defs"]
    return (
        cls({**client, "$defs": defs}),
        cls({**server, "$defs": defs}),
    )


def check_client_frame(frame: dict[str, Any]) -> None:
    _validators()[0].validate(frame)


def check_server_frame(frame: dict[str, Any]) -> None:
    _validators()[1].validate(frame)
