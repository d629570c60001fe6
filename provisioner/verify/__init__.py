"""Live verification of the expanded records on the authoritative DNS (issue 4, DESIGN §6).

``verify_records(records, platform, nameservers=..., wait=...) -> Report`` is the entry point;
``apply`` calls it with the records it changed, ``verify`` and ``drift`` with the expansion.
The checks (:mod:`.spfcheck`, :mod:`.dkim`, :mod:`.dmarc`, :mod:`.mx`, and :mod:`.platformzone`
for the platform's own records) are pure functions of a :class:`~provisioner.verify.view.View`;
only :mod:`provisioner.dnsclient` touches the network.
"""

from provisioner.verify.results import CheckResult, DomainReport, Report, ServerView, Status
from provisioner.verify.runner import plan, run_plans, verify_records

__all__ = [
    "CheckResult", "DomainReport", "Report", "ServerView", "Status", "plan", "run_plans",
    "verify_records",
]
