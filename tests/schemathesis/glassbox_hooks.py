"""Schemathesis hooks for the Glassbox API run (crates/glassbox-server/tests/it/schemathesis.rs).

Loaded through SCHEMATHESIS_HOOKS=glassbox_hooks with this directory on PYTHONPATH.

- The OpenAI facade's `model` is an agent id: generated bodies get a real one, so the run reaches
  the agent instead of stopping at 404 every time.
- `no_server_error`: no 5xx, except the one a caller can cause on purpose with a model that
  cannot comply: a 502 `structured_output_invalid` (the request's own output schema was not met
  by the model after the repair call; DESIGN's status for a model that failed). Any other 5xx
  fails, with its body.
"""

import json

import schemathesis

AGENT_ID = "assistant"
# A model that did not meet the caller's output schema: the provider (model) failed, not us.
ALLOWED_502_CODES = {"structured_output_invalid"}


@schemathesis.hook
def map_body(context, body):
    operation = getattr(context, "operation", None)
    path = getattr(operation, "path", "") if operation is not None else ""
    if path == "/v1/chat/completions" and isinstance(body, dict) and "model" in body:
        body = dict(body)
        body["model"] = AGENT_ID
    return body


def _error_code(response):
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if isinstance(body.get("error"), dict):  # the facade's OpenAI error shape
        code = body["error"].get("code")
    return code


@schemathesis.check
def no_server_error(ctx, response, case):
    """No 5xx, except a 502 for a model that could not meet the caller's output schema."""
    status = response.status_code
    if status < 500:
        return None
    if status == 502 and _error_code(response) in ALLOWED_502_CODES:
        return None
    raise AssertionError(f"server error {status}: {response.content[:500]!r}")
