"""Tracking plans: declared event schemas, and what happens to an event that breaks them.

Pure: no I/O, no transport, no store. The storage, enforcement on the write
paths, quarantine and services are built on these names:

* :func:`parse_plan` reads a plan document (YAML or JSON) and refuses a broken
  one with the JSON pointer of the problem (:class:`PlanError`);
* :func:`compile_plan` turns the :class:`PlanSpec` into a :class:`CompiledPlan`
  whose ``check_event``/``check_alert`` return a :class:`Verdict`
  (:data:`ACCEPTED`, shared, when nothing is wrong);
* :func:`diff_plans` describes a change of plan; :func:`generate_python`
  writes typed tracking functions for the Python SDK.

The plan format and the string-typing vocabulary are documented in
docs/tracking-plans.md (and :mod:`.wire`).
"""

from eventwire.ingest.plan.check import (
    ACCEPTED,
    MAX_VIOLATIONS,
    NOT_GOVERNED,
    RULES,
    CompiledPlan,
    Verdict,
    Violation,
    compile_plan,
)
from eventwire.ingest.plan.codegen import generate_python
from eventwire.ingest.plan.diff import diff_plans
from eventwire.ingest.plan.model import (
    POLICIES,
    AlertSpec,
    EventSpec,
    Outcome,
    PlanError,
    PlanSpec,
    Policies,
    PropertySpec,
)
from eventwire.ingest.plan.parse import parse_plan

__all__ = [
    "ACCEPTED",
    "MAX_VIOLATIONS",
    "NOT_GOVERNED",
    "POLICIES",
    "RULES",
    "AlertSpec",
    "CompiledPlan",
    "EventSpec",
    "Outcome",
    "PlanError",
    "PlanSpec",
    "Policies",
    "PropertySpec",
    "Verdict",
    "Violation",
    "compile_plan",
    "diff_plans",
    "generate_python",
    "parse_plan",
]
