"""Run only by tests/test_logging.py (the name keeps it out of the suite's collection):
a test that logs a rectify value and the simulator password, so the leak scan at the end
of its run must fail that run."""

from gdpr_daemon.logs import get_logger
from tests.helpers import SIM_PASSWORD, pii


def test_logs_personal_data_by_mistake():
    log = get_logger("leak_probe")
    log.info("oops", note=f"rectify value {pii(1)}")
    log.info("oops", hint=f"the password is {SIM_PASSWORD}")
