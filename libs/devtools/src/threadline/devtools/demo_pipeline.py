"""Set up the demo pipeline through the public APIs: ``threadline-demo-pipeline``.

As the demo firm's owner: a chat template "Documents for [[date.year]]" with two client
tasks (messaging), and the pipeline "Individual 1040 (demo)" = Waiting for documents (send
that template as a reply to the client's latest thread; automove on) → Preparing → Review
(pipeline). Idempotent by name: what exists already is reused, so ``./threadline up``
may run it every time. Prints the ids a newcomer needs to create and watch a job.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from threadline.devtools.token import mint_token

__all__ = ["PIPELINE_NAME", "TEMPLATE_NAME", "main", "set_up"]

TEMPLATE_NAME = "Documents for the return (demo)"
PIPELINE_NAME = "Individual 1040 (demo)"
_TEMPLATE = {
    "name": TEMPLATE_NAME,
    "subject": "Documents for [[date.year]]",
    "html": "<p>Hi [[contact.first_name]], to start on [[account.name]]'s return we need "
    "two things from you; tick each task when it is done.</p>",
    "client_tasks": ["Upload your W-2", "Upload your 1099s"],
}


def _call(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - a local service URL
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def _wait_ready(base: str, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5):  # noqa: S310
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def set_up(*, messaging: str, pipeline: str, firm: str) -> dict[str, Any]:
    """Create (or find) the demo template and pipeline; return the pipeline."""
    token = mint_token(sub="st_olivia", firm=firm, kind="staff", role="owner", name="Olivia")
    for base in (messaging, pipeline):
        _wait_ready(base, seconds=60)
    templates = _call(messaging, token, "GET", "/v1/templates?limit=100")["templates"]
    template = next((t for t in templates if t["name"] == TEMPLATE_NAME), None)
    if template is None:
        template = _call(messaging, token, "POST", "/v1/templates", _TEMPLATE)
    pipelines = _call(pipeline, token, "GET", "/v1/pipelines")["pipelines"]
    found = next((p for p in pipelines if p["name"] == PIPELINE_NAME), None)
    if found is not None:
        return dict(found)
    stages = [
        {
            "name": "Waiting for documents",
            "automove": True,
            "automations": [{"template_id": template["id"], "mode": "reply_to_latest"}],
        },
        {"name": "Preparing"},
        {"name": "Review"},
    ]
    return dict(
        _call(pipeline, token, "POST", "/v1/pipelines", {"name": PIPELINE_NAME, "stages": stages})
    )


def main(argv: Sequence[str] | None = None) -> None:
    host = "http://127.0.0.1"
    parser = argparse.ArgumentParser(description="Create the demo template and pipeline.")
    parser.add_argument("--firm", default="firm_demo")
    parser.add_argument(
        "--messaging",
        default=f"{host}:{os.environ.get('THREADLINE_MESSAGING_PORT', '8001')}",
    )
    parser.add_argument(
        "--pipeline", default=f"{host}:{os.environ.get('THREADLINE_PIPELINE_PORT', '8004')}"
    )
    args = parser.parse_args(argv)
    found = set_up(messaging=args.messaging, pipeline=args.pipeline, firm=args.firm)
    print(
        f"demo pipeline {found['pipeline_id']}: " + " → ".join(s["name"] for s in found["stages"])
    )
