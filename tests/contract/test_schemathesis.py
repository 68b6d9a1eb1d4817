"""schemathesis against the running simulator, with the OpenAPI document the package ships.

One test per operation of the document.  Each runs schemathesis' examples, coverage and
fuzzing phases (valid and invalid requests, bounded and derandomized, so every run sends the
same requests) over loopback with a logged-in session, and checks every answer:

* no 5xx (the simulator's fault injection is off);
* status codes, content types, headers and bodies conform to the document;
* invalid requests are refused (4xx), requests without credentials answer 401, 405 names
  the allowed methods (schemathesis' default checks);
* a request the document allows is never refused by the simulator's request validation
  (a refusal by a rule of the account, such as an unknown service, is fine: the document
  cannot know the account).  This replaces schemathesis' ``positive_data_acceptance``,
  which would count those refusals too.
"""

from __future__ import annotations

import functools

import requests
import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

from gdpr_daemon.ownbackup.openapi import load_spec
from gdpr_daemon.simulator.conformance import INVALID

from .conftest import EMAIL, PASSWORD, LiveSimulator

CALL_TIMEOUT_S = 5.0

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20_240_611,
        "generation": {"max-examples": 10, "deterministic": True, "database": "none"},
        "checks": {"positive_data_acceptance": {"enabled": False}},
        "output": {
            "sanitization": {
                "keys-to-sanitize": ["x-session-id", "authorization", "password", "refresh_token"],
            }
        },
    }
)
schema = schemathesis.openapi.from_dict(load_spec(), config=CONFIG)


def _login(url: str) -> str:
    answer = requests.post(
        url + "/api/auth/v1/login",
        data={"email": EMAIL, "password": PASSWORD},
        timeout=CALL_TIMEOUT_S,
    )
    answer.raise_for_status()
    session_id: str = answer.json()["session_id"]
    return session_id


@functools.cache
def _shared_session(url: str) -> str:
    return _login(url)


def validation_accepts_what_the_document_allows(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A schema-valid request must not be refused by the simulator's request validation."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        message = response.json().get("message", "")
    except ValueError:
        return None
    if isinstance(message, str) and message.startswith(INVALID):
        raise RejectedPositiveData(
            operation=case.operation.label,
            message=f"The simulator's request validation refused a request the document allows: {message}",
            status_code=400,
            allowed_statuses=["2xx", "400 for a rule of the account"],
        )
    return None


@schema.parametrize()
def test_simulator_conforms_to_the_document(case: schemathesis.Case, threaded_simulator: LiveSimulator) -> None:
    """Generated valid and invalid calls get answers the document allows, and never a 5xx."""
    url = threaded_simulator.url
    # Logging out ends the session it carries: give it one of its own.
    session_id = _login(url) if case.path == "/api/auth/v1/logout" else _shared_session(url)
    case.call_and_validate(
        base_url=url,
        headers={"X-SESSION-ID": session_id},
        timeout=CALL_TIMEOUT_S,
        additional_checks=[validation_accepts_what_the_document_allows],
    )
