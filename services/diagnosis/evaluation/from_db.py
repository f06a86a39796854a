"""`make eval FROM_DB=1`: the rules scored on the cases people closed with a confirmed root cause, the save
rates per root cause and playbook, and (with scikit-learn installed) a model fitted to those cases beside them.

The database is the one diagnosis uses (`BRINK_DATABASE_URL`, default the SQLite file of `make run`). Cases
confirmed as `unknown` are counted but not scored. A fitted model is reported, never applied: the rules file
stays what diagnosis runs until a person changes it.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError, ProgrammingError

from services.diagnosis.evaluation.run import Report, evaluate, render
from services.diagnosis.learning import PlaybookRecord
from services.diagnosis.models import ConfirmedCase
from services.diagnosis.repository import confirmed_cases, save_records
from services.diagnosis.rules import DEFAULT_RULES, Rules, load_rules
from shared.db import make_engine, make_sessionmaker

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./brink.db"


def scenario_of(case: ConfirmedCase, rules: Rules) -> dict[str, Any]:
    """A confirmed case as a labelled scenario: what diagnosis saw, and what the person found."""
    move_on = case.outcome == "moved_on" or case.confirmed_root_cause in rules.move_on
    return {
        **case.facts,
        "id": case.case_id,
        "story": f"{case.outcome}; diagnosed {case.diagnosed_root_cause}, confirmed {case.confirmed_root_cause}",
        "expect": {"root_cause": case.confirmed_root_cause, "verdict": "move_on" if move_on else "pursue"},
    }


async def read(database_url: str) -> tuple[list[ConfirmedCase], list[PlaybookRecord]]:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            cases = await confirmed_cases(session)
            records = [
                PlaybookRecord(row.confirmed_root_cause, row.playbook, saved=int(row.saved), closed=row.closed)
                for row in await save_records(session)
            ]
    finally:
        await engine.dispose()
    return cases, records


def save_rate_table(records: list[PlaybookRecord], min_cases: int) -> list[str]:
    lines = [
        f"save rates per confirmed root cause and playbook (saved / saved or lost; counts from {min_cases} cases)",
        f"{'root cause':<28}{'playbook':<28}{'saved':>7}{'closed':>8}{'rate':>7}",
    ]
    for record in sorted(records, key=lambda r: (r.root_cause, -r.save_rate)):
        mark = "" if record.closed >= min_cases else "  (too few to count)"
        lines.append(
            f"{record.root_cause:<28}{record.playbook:<28}{record.saved:>7}{record.closed:>8}"
            f"{record.save_rate:>7.0%}{mark}"
        )
    return lines


def report(cases: list[ConfirmedCase], records: list[PlaybookRecord], rules: Rules, min_cases: int) -> str:
    """The whole `--from-db` report as text."""
    scored = [scenario_of(case, rules) for case in cases if case.confirmed_root_cause != "unknown"]
    lines = [
        f"confirmed cases: {len(cases)} ({len(cases) - len(scored)} confirmed as unknown, not scored)",
        f"outcomes: {dict(Counter(case.outcome for case in cases))}",
        "",
    ]
    rules_report: Report | None = None
    if scored:
        rules_report = evaluate(scored, rules)
        lines += ["== the rules on the confirmed cases ==", render(rules_report), ""]
    lines += [*save_rate_table(records, min_cases), ""]
    lines += fitted_model_lines(scored, rules, rules_report)
    return "\n".join(lines)


def fitted_model_lines(scored: list[dict[str, Any]], rules: Rules, rules_report: Report | None) -> list[str]:
    """A logistic regression fitted to the confirmed cases, on the rules' own evidence, cross-validated."""
    from services.diagnosis.evaluation.fit import FitUnavailable, fit_to_cases

    try:
        fitted = fit_to_cases(scored, rules)
    except FitUnavailable as reason:
        return [f"fitted model: not fitted ({reason})"]
    rules_accuracy = rules_report.top1 if rules_report else 0.0
    verdict = (
        "better than the rules; not applied (the rules file stays what diagnosis runs: change its weights by hand)"
        if fitted.accuracy > rules_accuracy
        else "not better than the rules; keep the rules"
    )
    return [
        f"fitted model (logistic regression on the rules' evidence, {fitted.folds}-fold cross-validation over "
        f"{fitted.cases} cases): top-1 {fitted.accuracy:.1%} against the rules' {rules_accuracy:.1%}: {verdict}"
    ]


def main(argv: list[str]) -> None:
    database_url = os.environ.get("BRINK_DATABASE_URL", DEFAULT_DATABASE_URL)
    min_cases = int(os.environ.get("BRINK_LEARNING_MIN_CASES", "20"))
    rules = load_rules(Path(os.environ.get("BRINK_RULES_FILE", DEFAULT_RULES)))
    where = database_url.split("@")[-1]  # never the password
    try:
        cases, records = asyncio.run(read(database_url))
    except (OperationalError, ProgrammingError) as error:
        print(f"brink: cannot read confirmed cases from {where} ({error.orig}); run `brink migrate` first?")
        raise SystemExit(2) from None
    print(f"== confirmed cases in {where} ==")
    print(report(cases, records, rules, min_cases))
